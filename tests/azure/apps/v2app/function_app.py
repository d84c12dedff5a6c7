"""A v2-model Durable Functions app, written as for Azure (perdure's own test app)."""

import json
from datetime import datetime, timedelta

import azure.durable_functions as df
import azure.functions as func
from helpers import Greeting
from shouting import bp

myApp = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
myApp.register_functions(bp)


@myApp.route(route="orchestrators/{functionName}", methods=["POST"])
@myApp.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient):
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["functionName"], None, payload)
    return client.create_check_status_response(req, instance_id)


@myApp.route(route="run/{functionName}/{instanceId?}", methods=["POST"],
             auth_level=func.AuthLevel.FUNCTION)
@myApp.durable_client_input(client_name="client")
async def http_start_wait(req: func.HttpRequest, client) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["functionName"], req.route_params.get("instanceId"),
        json.loads(body) if body else None)
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=20000, retry_interval_in_milliseconds=100)


@myApp.route(route="manage/{instanceId}/{action}", methods=["GET", "POST"])
@myApp.durable_client_input(client_name="client")
async def manage(req: func.HttpRequest, client) -> func.HttpResponse:
    """Exercises the SDK client's methods against perdure's loopback listener."""
    instance_id, action = req.route_params["instanceId"], req.route_params["action"]
    result = None
    if action == "status":
        status = await client.get_status(instance_id, show_input=True)
        result = status.to_json() if status else None
    elif action == "raise":
        await client.raise_event(instance_id, req.params["event"], req.get_json())
    elif action == "terminate":
        await client.terminate(instance_id, "enough")
    elif action == "signal":
        await client.signal_entity(df.EntityId("Counter", instance_id), "add", req.get_json())
    elif action == "read":
        state = await client.read_entity_state(df.EntityId("Counter", instance_id))
        result = {"exists": state.entity_exists, "state": state.entity_state}
    elif action == "all":
        result = sorted(s.instance_id for s in await client.get_status_all())
    elif action == "purge":
        result = (await client.purge_instance_history(instance_id)).instances_deleted
    elif action == "suspend":
        await client.suspend(instance_id, "pause")
    elif action == "resume":
        await client.resume(instance_id, "go on")
    elif action == "restart":
        result = await client.restart(instance_id)
    elif action == "running":
        statuses = await client.get_status_by(
            runtime_status=[df.OrchestrationRuntimeStatus.Running])
        result = sorted(s.instance_id for s in statuses)
    elif action == "purge_terminated":
        purged = await client.purge_instance_history_by(
            created_time_from=datetime(2000, 1, 1),
            runtime_status=[df.OrchestrationRuntimeStatus.Terminated])
        result = purged.instances_deleted
    return func.HttpResponse(json.dumps(result), mimetype="application/json")


@myApp.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    city = context.get_input()
    first = yield context.call_activity(say_hello, city)   # the decorated function itself
    context.set_custom_status({"step": 1})
    second = yield context.call_activity("shout", first)  # by name, from a blueprint
    context.set_custom_status({"step": 2})
    return [first, second]


@myApp.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    cities = context.get_input()
    tasks = [context.call_activity("say_hello", c) for c in cities]
    results = yield context.task_all(tasks)
    return {"count": len(results), "results": results}


@myApp.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    a = yield context.call_sub_orchestrator("chain", "Tokyo")
    b = yield context.call_sub_orchestrator("chain", "Lima", f"{context.instance_id}-child")
    return a + b


@myApp.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    deadline = context.current_utc_datetime + timedelta(seconds=context.get_input())
    timeout = context.create_timer(deadline)
    answer = context.wait_for_external_event("Approval")
    context.set_custom_status("waiting")
    winner = yield context.task_any([answer, timeout])
    if winner == answer:
        timeout.cancel()
        context.set_custom_status("approved")
        return f"approved by {answer.result}"
    context.set_custom_status("escalated")
    return "escalated"


@myApp.orchestration_trigger(context_name="context")
def counting(context: df.DurableOrchestrationContext):
    entity = df.EntityId("Counter", context.get_input())
    context.signal_entity(entity, "add", 5)
    yield context.call_entity(entity, "add", 2)
    value = yield context.call_entity(entity, "get")
    greeting = yield context.call_activity("make_greeting", value)
    attempts = yield context.call_activity_with_retry(
        "flaky", df.RetryOptions(10, 3), context.instance_id)
    return {"value": value, "greeting": greeting.text, "retry": attempts}


@myApp.orchestration_trigger(context_name="context")
def plain(context: df.DurableOrchestrationContext):
    """Not a generator: the orchestration completes at once."""
    guid = context.new_guid()
    return {"input": context.get_input(), "guid": str(guid), "id": context.instance_id,
            "utc": context.current_utc_datetime.utcoffset().total_seconds()}


@myApp.entity_trigger(context_name="context", entity_name="Counter")
def counter(context: df.DurableEntityContext):
    value = context.get_state(lambda: 0)
    op = context.operation_name
    if op == "add":
        value += context.get_input()
        context.set_state(value)
    elif op == "reset":
        context.set_state(0)
    elif op == "get":
        context.set_result(value)


@myApp.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}"


@myApp.activity_trigger(input_name="value")
def make_greeting(value: int) -> Greeting:
    return Greeting(f"count is {value}")


_attempts: dict = {}


@myApp.activity_trigger(input_name="key")
def flaky(key: str) -> int:
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] < 2:
        raise RuntimeError("first attempt fails")
    return _attempts[key]
