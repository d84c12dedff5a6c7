import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    first = yield context.call_sub_orchestrator("Chain")
    second = yield context.call_sub_orchestrator("FanOut", 3)
    return {"chain": first, "fan_out": second}


main = df.Orchestrator.create(orchestrator_function)
