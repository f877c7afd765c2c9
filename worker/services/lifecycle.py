"""Merge two leads that are one, and erase a lead on a privacy request.

Merge moves everything of OTHER onto KEEP in one transaction and leaves OTHER as a pointer
(``merged_into_id``), so its old id still resolves and mail to its address (now a contact
of KEEP) threads onto KEEP.

Erase deletes the lead and everything of it, and the blobs nothing else uses. It keeps
only salted sha256 digests of the lead's addresses and Message-IDs (store/lifecycle.py;
the salt is a random secret made once per database by migration 0007, table ``meta``), so
a resync of the mailbox does not make the lead again: intake answers such mail
``ignored`` with reason ``erased`` and stores no row of it at all (the outcome is the
intake result, as printed by ``ingest``/logged by ``run``) - a row would keep personal data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from worker.errors import NotFoundError, ValidationError
from worker.services import reminders
from worker.services.context import App
from worker.services.notes import check_actor
from worker.services.records import derived_status
from worker.store import blobs
from worker.store import lifecycle as store
from worker.store import records as records_store


def merge_leads(app: App, keep: int, other: int, actor: str) -> dict[str, Any]:
    """Move OTHER onto KEEP; returns what moved (the JSON of ``leads merge``)."""
    who = check_actor(actor)
    if keep == other:
        raise ValidationError(f"cannot merge lead {keep} into itself", keep)
    now = datetime.now(UTC)
    with app.db.transaction() as session:
        conn = session.connection()
        kept = store.lead_ref(conn, keep)
        gone = store.lead_ref(conn, other)
        if kept is None:
            raise NotFoundError(f"no lead {keep}", keep)
        if gone is None:
            raise NotFoundError(f"no lead {other}", other)
        if kept.merged_into_id is not None:
            raise ValidationError(
                f"lead {keep} was merged into lead {kept.merged_into_id}; merge into that", keep
            )
        if gone.merged_into_id is not None:
            raise ValidationError(
                f"lead {other} was already merged into lead {gone.merged_into_id}", other
            )
        # One reminder per lead and kind: OTHER's go to KEEP unless KEEP has its own.
        reminders.move_for_merge(conn, keep, other, who, now)
        moved = store.merge(conn, keep, other)
        added_contact = False
        if (
            gone.email_key
            and gone.email
            and gone.email_key != kept.email_key
            and not store.has_contact(conn, keep, gone.email_key)
        ):
            store.add_contact(
                conn,
                keep,
                name=gone.person_name,
                email=gone.email,
                email_key=gone.email_key,
                now=now,
            )
            added_contact = True
        executive = store.mark_merged(conn, other, keep, now)
        status = _derive_status(session, keep, f"records of lead {other} merged by {who}", now)
        reminders.cancel_on_status(conn, keep, status, f"lead is {status} after a merge", now=now)
        details: dict[str, Any] = {"merged_lead_id": other, "moved": moved}
        if executive:
            details["merged_lead_assigned_to"] = executive
        store.log_activity(
            conn,
            keep,
            kind="merge",
            summary=f"lead {other} ({gone.email or 'no email'}) merged into this lead by {who}",
            actor=who,
            details=details,
            now=now,
        )
    return {
        "id": keep,
        "merged_lead_id": other,
        "moved": moved,
        "contact_added": added_contact,
        "status": status,
        "by": who,
    }


def _derive_status(session: Session, lead_id: int, cause: str, now: datetime) -> str:
    """KEEP's status from its records, OTHER's among them now (records.derived_status)."""
    lead = records_store.lead_for_record(session, lead_id)
    assert lead is not None  # checked in this transaction
    records = records_store.records_of(session, lead_id)
    status = derived_status(
        lead["status"],
        [o["status"] for o in records["opportunities"]],
        [q["status"] for q in records["quotations"]],
        len(records["customers"]),
    )
    if status is None or status == lead["status"]:
        return str(lead["status"])
    records_store.set_lead_status(
        session, lead_id, before=lead["status"], to=status, cause=cause, now=now
    )
    return status


def erase_lead(app: App, lead_id: int) -> dict[str, Any]:
    """Erase a lead (and the leads merged into it); returns the counts of what went."""
    now = datetime.now(UTC)
    with app.db.transaction() as session:
        conn = session.connection()
        ref = store.lead_ref(conn, lead_id)
        if ref is None:
            raise NotFoundError(f"no lead {lead_id}", lead_id)
        if ref.merged_into_id is not None:
            # Its mail and people are the other lead's now: erasing the pointer alone would
            # leave them, and erasing the other lead silently may erase more than was asked.
            raise ValidationError(
                f"lead {lead_id} was merged into lead {ref.merged_into_id}, which holds its "
                f"mail now; erase that: leadmail leads erase {ref.merged_into_id} --yes",
                lead_id,
            )
        lead_ids = [lead_id, *store.pointers_to(conn, lead_id)]
        erased = store.erase(conn, lead_ids, store.salt(conn), now)
        unused = store.unreferenced(conn, erased.blob_candidates)
        records = blobs.forget(conn, unused)
    # After the commit, made durable: bytes zeroed before it would be lost if the erase rolled
    # back (or a power cut undid it). Zeroed in place, so nothing of them is readable from now
    # on; `leadmail store gc` gives the space back.
    if records:
        app.db.sync()
    removed = app.blobs.zero(records)
    return {"id": lead_id, "erased_lead_ids": lead_ids, **erased.counts, "blobs": removed}
