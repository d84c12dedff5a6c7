"""A blueprint, registered by function_app.py."""

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


@bp.activity_trigger(input_name="text", activity="shout")
async def shout_text(text: str) -> str:
    return text.upper()


@bp.route(route="hello/{name}", auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"hello {req.route_params['name']} {req.params.get('x', '')}".strip())
