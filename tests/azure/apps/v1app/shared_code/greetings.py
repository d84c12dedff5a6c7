def greet(city: str) -> str:
    return f"Hello {city}!"
