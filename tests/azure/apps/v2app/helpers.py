"""A payload class with the SDK's to_json/from_json convention."""


class Greeting:
    def __init__(self, text: str) -> None:
        self.text = text

    @staticmethod
    def to_json(obj: "Greeting") -> dict:
        return {"text": obj.text}

    @staticmethod
    def from_json(data: dict) -> "Greeting":
        return Greeting(data["text"])
