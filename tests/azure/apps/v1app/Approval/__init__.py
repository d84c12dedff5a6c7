from datetime import timedelta

import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    phone = context.get_input()
    code = yield context.call_activity("SendSms", phone)
    deadline = context.current_utc_datetime + timedelta(seconds=2)
    timeout = context.create_timer(deadline)
    for _attempt in range(3):
        answer = context.wait_for_external_event("SmsChallengeResponse")
        winner = yield context.task_any([answer, timeout])  # the same timer each round
        if winner == answer:
            if answer.result == code:
                if not timeout.is_completed:
                    timeout.cancel()
                context.signal_entity(df.EntityId("Counter", "approvals"), "add", 1)
                return True
        else:
            break
    return False


main = df.Orchestrator.create(orchestrator_function)
