import json

import azure.durable_functions as df
import azure.functions as func


async def main(req: func.HttpRequest, client: str, res: func.Out[func.HttpResponse]) -> None:
    durable = df.DurableOrchestrationClient(client)
    instance_id = req.route_params["instanceId"]
    if req.method == "POST":
        await durable.raise_event(instance_id, req.params["event"], req.get_json())
        res.set(func.HttpResponse(status_code=202))
        return
    status = await durable.get_status(instance_id)
    body = {"runtimeStatus": status.runtime_status.value, "output": status.output,
            "customStatus": status.custom_status} if status else None
    res.set(func.HttpResponse(json.dumps(body), mimetype="application/json",
                              status_code=200 if status else 404))
