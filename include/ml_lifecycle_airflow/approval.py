"""Human approval of a promotion (``promotion.mode: approval``), with Airflow's HITL operators.

After a passing gate the training DAG waits on :class:`PromotionApproval`, a
``HITLBranchOperator`` with two options: *Approve* continues to ``promote``, *Reject* to
``not_approved``. The question shows in the Airflow UI (Browse -> Required actions) with the
candidate, its test metric and every gate rule (including the paired comparison with the
champion); it is answered there or through the REST API
(``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/await_approval/-1/hitlDetails``
with ``{"chosen_options": ["Approve"], "params_input": {"comment": "..."}}``). No answer within
``promotion.approval_timeout_hours``: the default, *Reject*, is taken.

Who answered and their comment are pushed to XCom (key ``approval``); ``promote`` records them
as the actor and in the reason of the promotion history, ``not_approved`` in the alert.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import Param

APPROVE = "Approve"
REJECT = "Reject"
XCOM_KEY = "approval"

BODY = """
{% set r = ti.xcom_pull(task_ids='__TRAIN__') %}
### Promote `__MODEL__` v{{ r.version }}?

The candidate **passed the promotion gate**. Test-split {{ r.primary_metric }}: **{{ r.metric }}**
(champion when it was trained: v{{ r.champion_before }}). Rows per split: {{ r.rows_per_split }}.

Gate rules (the champion comparison is paired: both models on the same test rows):
{% for rule in r.gate_rules %}
- {{ rule }}
{% endfor %}

Model page: `/ml-monitoring/models/__MODEL__/versions/{{ r.version }}`

**Approve**: v{{ r.version }} becomes the champion. **Reject**, or no answer within
__HOURS__ hours: it stays registered and is not promoted; an `approval_rejected` alert is sent.
"""


class PromotionApproval(HITLBranchOperator):
    """Approve -> ``promote_task_id``; Reject or timeout -> ``reject_task_id``; the answer (who,
    when, comment) goes to XCom key ``approval``."""

    def __init__(self, *, model: str, train_task_id: str, promote_task_id: str,
                 reject_task_id: str, timeout_hours: float, approvers: tuple[str, ...] = (),
                 **kwargs: Any) -> None:
        kwargs.pop("params", None)  # the DAG's own params: the form asks for a comment only
        body = (BODY.replace("__TRAIN__", train_task_id).replace("__MODEL__", model)
                .replace("__HOURS__", f"{timeout_hours:g}"))
        super().__init__(
            subject=f"Promote a new champion of {model}?",
            body=body,
            options=[APPROVE, REJECT],
            defaults=REJECT,
            options_mapping={APPROVE: promote_task_id, REJECT: reject_task_id},
            params={"comment": Param("", type="string", maxLength=1000, title="Comment",
                                     description="Why (stored in the promotion history)")},
            assigned_users=[{"id": a, "name": a} for a in approvers] or None,
            response_timeout=dt.timedelta(hours=timeout_hours),
            **kwargs,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" not in event:
            context["ti"].xcom_push(key=XCOM_KEY, value=answer_of(event))
        return super().execute_complete(context, event)


def answer_of(event: dict[str, Any]) -> dict[str, Any]:
    """Small JSON of a HITL answer: ``{"approved", "by", "comment", "at", "timed_out"}``."""
    user = event.get("responded_by_user") or {}
    at = event.get("responded_at")
    chosen = list(event.get("chosen_options") or [])
    by = user.get("name") or user.get("id") if isinstance(user, dict) else str(user)
    return {"approved": chosen == [APPROVE], "by": by or None,
            "comment": str((event.get("params_input") or {}).get("comment") or ""),
            "at": at.isoformat() if hasattr(at, "isoformat") else at,
            "timed_out": not by}
