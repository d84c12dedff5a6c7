import azure.durable_functions as df


def entity_function(context: df.DurableEntityContext):
    current = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        current += context.get_input()
    elif operation == "reset":
        current = 0
    elif operation == "get":
        context.set_result(current)
    elif operation == "fail":
        raise ValueError("counter refused")
    context.set_state(current)


main = df.Entity.create(entity_function)
