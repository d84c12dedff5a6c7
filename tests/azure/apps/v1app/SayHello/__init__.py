from ..shared_code.greetings import greet


def main(city: str) -> str:
    return greet(city)
