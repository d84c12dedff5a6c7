import azure.durable_functions as df
import azure.functions as func


async def main(req: func.HttpRequest, starter: str) -> func.HttpResponse:
    client = df.DurableOrchestrationClient(starter)
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["functionName"], req.route_params.get("instanceId"),
        req.get_json() if body else None)
    return client.create_check_status_response(req, instance_id)
