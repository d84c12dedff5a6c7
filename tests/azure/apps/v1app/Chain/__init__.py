import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    outputs = []
    for city in ["Tokyo", "Seattle", "London"]:
        outputs.append((yield context.call_activity("SayHello", city)))
        context.set_custom_status({"done": len(outputs)})
    return outputs


main = df.Orchestrator.create(orchestrator_function)
