//! Outcome decisions at finish (`finish::structured`, `finish::terminal_state`): exit status,
//! `is_error`, `subtype` and `stop_reason` → verdict, error kind and terminal state. Structured
//! signals only: no test here depends on what the agent's text says.
#![allow(clippy::unwrap_used)]

use super::finish::{structured, terminal_state};
use super::fixtures::task;
use drover_agents::Adapter;
use drover_shim::ExitInfo;
use drover_types::{ErrorKind, Outcome, TaskState, Verdict};
use serde_json::{json, Value};

fn exited(code: i32) -> ExitInfo {
    ExitInfo {
        code: Some(code),
        signal: None,
        spawn_error: None,
    }
}

fn killed(signal: i32) -> ExitInfo {
    ExitInfo {
        code: None,
        signal: Some(signal),
        spawn_error: None,
    }
}

fn adapter(name: &str) -> Box<dyn Adapter> {
    drover_agents::adapter(name).unwrap()
}

/// A multi-turn (Claude) task's decision on its last `result` event.
fn claude(exit: ExitInfo, result: Option<Value>, turns: (i64, i64)) -> Outcome {
    let mut t = task(TaskState::Running);
    t.agent = "claude".into();
    (t.turns_sent, t.turns_done) = turns;
    t.result = Some("the final text".into());
    structured(adapter("claude").as_ref(), &exit, result.as_ref(), &t)
}

fn fail(o: &Outcome) -> (Verdict, Option<ErrorKind>, &str) {
    (o.verdict, o.error_kind, o.reason.as_str())
}

#[test]
fn a_command_is_judged_by_its_exit_status_alone() {
    let t = task(TaskState::Running);
    let cmd = adapter("command");
    let ok = structured(cmd.as_ref(), &exited(0), None, &t);
    assert_eq!(ok, Outcome::success("command exited 0"));
    assert_eq!(terminal_state(&ok), TaskState::Succeeded);
    // A result-looking line from a command changes nothing.
    let said = json!({"is_error": true, "subtype": "error_during_execution"});
    assert_eq!(structured(cmd.as_ref(), &exited(0), Some(&said), &t), ok);

    let three = structured(cmd.as_ref(), &exited(3), None, &t);
    assert_eq!(
        fail(&three),
        (
            Verdict::Fail,
            Some(ErrorKind::AgentExit),
            "agent exited with code 3"
        )
    );
    assert_eq!(terminal_state(&three), TaskState::Failed);
    let nine = structured(cmd.as_ref(), &killed(9), None, &t);
    assert_eq!(nine.reason, "agent killed by signal 9");
    assert_eq!(nine.error_kind, Some(ErrorKind::AgentExit));
}

#[test]
fn an_agent_that_never_started_fails_with_a_hint_for_claude_only() {
    let t = task(TaskState::Preparing);
    let missing = ExitInfo {
        code: None,
        signal: None,
        spawn_error: Some("claude: No such file or directory".into()),
    };
    let o = structured(adapter("claude").as_ref(), &missing, None, &t);
    assert_eq!(o.error_kind, Some(ErrorKind::AgentExit));
    assert!(
        o.reason
            .starts_with("claude: No such file or directory (install Claude Code"),
        "{}",
        o.reason
    );
    let o = structured(adapter("command").as_ref(), &missing, None, &t);
    assert_eq!(o.reason, "claude: No such file or directory");
}

#[test]
fn a_multi_turn_agent_needs_a_result_of_its_turn() {
    let o = claude(exited(0), None, (1, 0));
    assert_eq!(
        fail(&o),
        (
            Verdict::Fail,
            Some(ErrorKind::AgentExit),
            "agent exited with code 0 before its turn ended"
        )
    );
    let ok = claude(
        exited(0),
        Some(json!({"subtype": "success", "is_error": false, "stop_reason": "end_turn"})),
        (1, 1),
    );
    assert_eq!(ok, Outcome::success("the agent finished its turn"));
}

#[test]
fn a_cut_off_answer_is_truncated_whatever_else_it_says() {
    for reason in ["max_tokens", "model_context_window_exceeded"] {
        let o = claude(
            exited(0),
            Some(json!({"subtype": "success", "is_error": false, "stop_reason": reason})),
            (1, 1),
        );
        assert_eq!(o.error_kind, Some(ErrorKind::Truncated), "{reason}");
        assert_eq!(
            o.reason,
            format!("the model's answer was cut off ({reason})")
        );
    }
}

#[test]
fn an_error_result_is_classified_by_its_subtype_and_api_status() {
    let budget = claude(
        exited(1),
        Some(json!({"subtype": "error_max_budget_usd", "is_error": true})),
        (1, 1),
    );
    assert_eq!(budget.error_kind, Some(ErrorKind::BudgetExceeded));
    // No `errors`: the task's last result text is the detail.
    assert_eq!(budget.reason, "error_max_budget_usd: the final text");

    let provider = claude(
        exited(1),
        Some(json!({"subtype": "success", "is_error": true, "api_error_status": 529})),
        (1, 1),
    );
    assert_eq!(provider.error_kind, Some(ErrorKind::ProviderError));

    let other = claude(
        exited(0),
        Some(
            json!({"subtype": "error_during_execution", "is_error": false,
                    "errors": ["tool crashed", "gave up"], "api_error_status": null}),
        ),
        (1, 1),
    );
    assert_eq!(
        fail(&other),
        (
            Verdict::Fail,
            Some(ErrorKind::AgentExit),
            "error_during_execution: tool crashed; gave up"
        )
    );
}

#[test]
fn a_crash_counts_only_while_a_turn_is_unanswered() {
    let good = json!({"subtype": "success", "is_error": false, "stop_reason": "end_turn"});
    // Killed after every turn it was sent had its result (e.g. stopped once done): success.
    let o = claude(killed(15), Some(good.clone()), (2, 2));
    assert_eq!(o.verdict, Verdict::Success);
    // Died with a second turn unanswered: the earlier result does not make it a success.
    let o = claude(exited(1), Some(good), (2, 1));
    assert_eq!(
        fail(&o),
        (
            Verdict::Fail,
            Some(ErrorKind::AgentExit),
            "agent exited with code 1"
        )
    );
}

#[test]
fn cancelled_wins_over_the_verdict_in_the_terminal_state() {
    let cancelled = Outcome::fail(ErrorKind::Cancelled, "stopped by request");
    assert_eq!(terminal_state(&cancelled), TaskState::Cancelled);
    for kind in [
        ErrorKind::Timeout,
        ErrorKind::GateFailed,
        ErrorKind::BudgetExceeded,
    ] {
        assert_eq!(terminal_state(&Outcome::fail(kind, "x")), TaskState::Failed);
    }
}
