from hypothesis import given, strategies as st
@given(st.integers())
def test_x(device, x):
    assert device in ("cpu", "strict")
