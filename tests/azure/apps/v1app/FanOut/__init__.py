import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    n = context.get_input() or 5
    tasks = [context.call_activity("SayHello", str(i)) for i in range(n)]
    results = yield context.task_all(tasks)
    return len(results)


main = df.Orchestrator.create(orchestrator_function)
