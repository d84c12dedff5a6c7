import azure.functions as func


def main(phone: str, message: func.Out[str]) -> int:
    code = 1234
    message.set(f"your code is {code}")
    return code
