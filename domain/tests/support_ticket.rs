//! Given/when/then tests of the SupportTicket aggregate, with a fake staff
//! directory.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use cqrs_es::DomainEvent;
use domain::personal::{personal_fields, PersonalText};
use domain::support_ticket::{
    check_body, check_subject, is_staff, StaffDirectory, SupportTicket, SupportTicketCommand,
    SupportTicketEvent, SupportTicketServices, TicketStatus, MAX_BODY_CHARS,
    MAX_REPLIES_PER_TICKET, MAX_SUBJECT_CHARS,
};
use domain::{Actor, AggregateType, DomainError, Ownership, Role};
use support::{assert_wire_format, at, at_plus, id, state_after, Outcome};
use uuid::Uuid;

const TICKET: Uuid = Uuid::from_u128(10);
const OWNER: Uuid = Uuid::from_u128(1);
const STRANGER: Uuid = Uuid::from_u128(2);
const AGENT: Uuid = Uuid::from_u128(3);
const OTHER_AGENT: Uuid = Uuid::from_u128(4);
const ADMIN: Uuid = Uuid::from_u128(5);
const AUDITOR: Uuid = Uuid::from_u128(6);

/// The roles the fake directory knows; anyone else does not exist.
struct FakeStaff(HashMap<Uuid, Role>);

#[async_trait]
impl StaffDirectory for FakeStaff {
    async fn role_of(&self, user_id: Uuid) -> Result<Option<Role>, DomainError> {
        Ok(self.0.get(&user_id).copied())
    }
}

fn services() -> SupportTicketServices {
    SupportTicketServices {
        staff: Arc::new(FakeStaff(HashMap::from([
            (OWNER, Role::User),
            (STRANGER, Role::User),
            (AGENT, Role::Support),
            (OTHER_AGENT, Role::Support),
            (ADMIN, Role::Admin),
            (AUDITOR, Role::Auditor),
        ]))),
    }
}

fn given(
    events: Vec<SupportTicketEvent>,
    command: SupportTicketCommand,
) -> AggregateResultValidator<SupportTicket> {
    TestFramework::<SupportTicket>::with(services())
        .given(events)
        .when(command)
}

fn as_role(user_id: Uuid, role: Role) -> Actor {
    Actor::User { user_id, role }
}

fn owner() -> Actor {
    Actor::user(OWNER)
}

fn stranger() -> Actor {
    Actor::user(STRANGER)
}

fn agent() -> Actor {
    as_role(AGENT, Role::Support)
}

/// A sealed text as the command side hands it over (the domain never
/// opens it).
fn sealed(tag: &str) -> PersonalText {
    PersonalText::Sealed(format!("1:{tag}"))
}

fn open(actor: Actor) -> SupportTicketCommand {
    SupportTicketCommand::Open {
        actor,
        ticket_id: TICKET,
        subject: sealed("subject"),
        body: sealed("body"),
        at: at(),
    }
}

fn opened() -> SupportTicketEvent {
    SupportTicketEvent::TicketOpened {
        ticket_id: TICKET,
        owner_id: OWNER,
        subject: sealed("subject"),
        body: sealed("body"),
        at: at(),
    }
}

fn reply(actor: Actor) -> SupportTicketCommand {
    SupportTicketCommand::Reply {
        actor,
        body: sealed("reply"),
        at: at_plus(10),
    }
}

fn replied(reply_number: u32, author_id: Uuid) -> SupportTicketEvent {
    SupportTicketEvent::ReplyAdded {
        owner_id: OWNER,
        reply_number,
        author_id,
        from_staff: author_id != OWNER,
        body: sealed("reply"),
        at: at_plus(10),
    }
}

fn assign(actor: Actor, assignee_id: Uuid) -> SupportTicketCommand {
    SupportTicketCommand::Assign {
        actor,
        assignee_id,
        at: at_plus(20),
    }
}

fn assigned(assignee_id: Uuid, by: Option<Uuid>) -> SupportTicketEvent {
    SupportTicketEvent::TicketAssigned {
        owner_id: OWNER,
        assignee_id,
        assigned_by: by,
        at: at_plus(20),
    }
}

fn close(actor: Actor) -> SupportTicketCommand {
    SupportTicketCommand::Close {
        actor,
        at: at_plus(30),
    }
}

fn closed(by: Option<Uuid>) -> SupportTicketEvent {
    SupportTicketEvent::TicketClosed {
        owner_id: OWNER,
        closed_by: by,
        at: at_plus(30),
    }
}

fn reopen(actor: Actor) -> SupportTicketCommand {
    SupportTicketCommand::Reopen {
        actor,
        at: at_plus(40),
    }
}

fn reopened(by: Option<Uuid>) -> SupportTicketEvent {
    SupportTicketEvent::TicketReopened {
        owner_id: OWNER,
        reopened_by: by,
        at: at_plus(40),
    }
}

fn not_found() -> DomainError {
    DomainError::NotFound {
        entity: "support ticket",
    }
}

// ---- open ----

#[test]
fn a_user_opens_a_ticket_with_its_sealed_subject_and_body() {
    given(vec![], open(owner())).then_expect_events(vec![opened()]);
}

#[test]
fn every_role_opens_tickets_of_its_own() {
    for role in Role::ALL {
        let events = given(vec![], open(as_role(OWNER, role))).events();
        assert_eq!(events, vec![opened()], "{role:?}");
    }
}

#[test]
fn opening_an_opened_ticket_is_refused() {
    given(vec![opened()], open(owner()))
        .then_expect_error(DomainError::conflict("support ticket already opened"));
}

#[test]
fn the_system_opens_no_ticket() {
    given(vec![], open(Actor::System))
        .then_expect_error_message("forbidden: a support ticket belongs to a user");
}

// ---- reply ----

#[test]
fn the_owner_and_the_staff_reply_and_replies_are_numbered() {
    given(vec![opened()], reply(owner())).then_expect_events(vec![replied(1, OWNER)]);
    given(vec![opened(), replied(1, OWNER)], reply(agent()))
        .then_expect_events(vec![replied(2, AGENT)]);
    given(
        vec![opened(), replied(1, OWNER), replied(2, AGENT)],
        reply(as_role(ADMIN, Role::Admin)),
    )
    .then_expect_events(vec![replied(3, ADMIN)]);
}

#[test]
fn a_staff_reply_to_a_ticket_of_their_own_is_the_owners() {
    let own_ticket = SupportTicketEvent::TicketOpened {
        ticket_id: TICKET,
        owner_id: AGENT,
        subject: sealed("subject"),
        body: sealed("body"),
        at: at(),
    };
    let events = given(vec![own_ticket], reply(agent())).events();
    assert!(
        matches!(
            events.as_slice(),
            [SupportTicketEvent::ReplyAdded {
                from_staff: false,
                author_id: AGENT,
                owner_id: AGENT,
                ..
            }]
        ),
        "{events:?}"
    );
}

#[test]
fn anyone_else_finds_no_such_ticket() {
    for actor in [stranger(), as_role(AUDITOR, Role::Auditor)] {
        given(vec![opened()], reply(actor)).then_expect_error(not_found());
        given(vec![opened()], close(actor)).then_expect_error(not_found());
        given(vec![opened(), closed(Some(OWNER))], reopen(actor)).then_expect_error(not_found());
        given(vec![opened()], assign(actor, AGENT)).then_expect_error(not_found());
    }
}

#[test]
fn a_ticket_never_opened_is_not_found_even_by_the_staff() {
    for command in [
        reply(agent()),
        close(agent()),
        reopen(agent()),
        assign(agent(), AGENT),
        close(Actor::System),
    ] {
        given(vec![], command).then_expect_error(not_found());
    }
}

#[test]
fn the_system_writes_no_reply() {
    given(vec![opened()], reply(Actor::System)).then_expect_forbidden();
}

#[test]
fn a_closed_ticket_takes_no_reply_until_reopened() {
    given(vec![opened(), closed(Some(OWNER))], reply(owner())).then_expect_error(
        DomainError::conflict("the support ticket is closed; reopen it to reply"),
    );
    given(
        vec![opened(), closed(Some(OWNER)), reopened(Some(OWNER))],
        reply(owner()),
    )
    .then_expect_events(vec![replied(1, OWNER)]);
}

#[test]
fn replies_beyond_the_limit_are_refused_naming_it() {
    let mut history = vec![opened()];
    history.extend((1..=MAX_REPLIES_PER_TICKET).map(|n| replied(n, OWNER)));
    let refusal = given(history.clone(), reply(agent())).refusal();
    assert_eq!(
        refusal,
        DomainError::conflict(format!(
            "replies per ticket: the limit is {MAX_REPLIES_PER_TICKET} replies, and this ticket \
             has {MAX_REPLIES_PER_TICKET}; open a new ticket"
        ))
    );
    history.pop();
    let events = given(history, reply(agent())).events();
    assert_eq!(events, vec![replied(MAX_REPLIES_PER_TICKET, AGENT)]);
}

// ---- assign ----

#[test]
fn the_staff_assign_a_ticket_to_a_member_of_the_staff() {
    given(vec![opened()], assign(agent(), OTHER_AGENT))
        .then_expect_events(vec![assigned(OTHER_AGENT, Some(AGENT))]);
    given(vec![opened()], assign(agent(), AGENT))
        .then_expect_events(vec![assigned(AGENT, Some(AGENT))]);
    given(vec![opened()], assign(as_role(ADMIN, Role::Admin), ADMIN))
        .then_expect_events(vec![assigned(ADMIN, Some(ADMIN))]);
    given(
        vec![opened(), assigned(AGENT, Some(AGENT))],
        assign(Actor::System, OTHER_AGENT),
    )
    .then_expect_events(vec![assigned(OTHER_AGENT, None)]);
}

#[test]
fn the_owner_may_not_assign_their_ticket() {
    given(vec![opened()], assign(owner(), AGENT))
        .then_expect_error_message("forbidden: only support staff assign tickets");
}

#[test]
fn the_assignee_must_hold_a_staff_role_now() {
    for assignee in [OWNER, STRANGER, AUDITOR] {
        let refusal = given(vec![opened()], assign(agent(), assignee)).refusal();
        match refusal {
            DomainError::Invalid { field, reason } => {
                assert_eq!(field, "assignee_id");
                assert!(reason.contains("tickets.staff"), "{reason}");
            }
            other => panic!("{assignee}: {other:?}"),
        }
    }
    given(vec![opened()], assign(agent(), id(99)))
        .then_expect_error(DomainError::invalid("assignee_id", "no such user"));
}

#[test]
fn assigning_the_assignee_again_records_nothing() {
    given(
        vec![opened(), assigned(AGENT, Some(AGENT))],
        assign(agent(), AGENT),
    )
    .then_expect_events(vec![]);
}

#[test]
fn a_closed_ticket_is_not_assigned() {
    given(vec![opened(), closed(Some(OWNER))], assign(agent(), AGENT)).then_expect_error(
        DomainError::conflict("the support ticket is closed; reopen it to assign it"),
    );
}

// ---- close and reopen ----

#[test]
fn the_owner_or_the_staff_close_and_reopen() {
    given(vec![opened()], close(owner())).then_expect_events(vec![closed(Some(OWNER))]);
    given(vec![opened()], close(agent())).then_expect_events(vec![closed(Some(AGENT))]);
    given(vec![opened()], close(Actor::System)).then_expect_events(vec![closed(None)]);
    given(vec![opened(), closed(Some(AGENT))], reopen(owner()))
        .then_expect_events(vec![reopened(Some(OWNER))]);
    given(vec![opened(), closed(Some(OWNER))], reopen(agent()))
        .then_expect_events(vec![reopened(Some(AGENT))]);
}

#[test]
fn closing_a_closed_or_reopening_an_open_ticket_is_refused() {
    given(vec![opened(), closed(Some(OWNER))], close(agent())).then_expect_error(
        DomainError::conflict("the support ticket is already closed"),
    );
    given(vec![opened()], reopen(owner()))
        .then_expect_error(DomainError::conflict("the support ticket is already open"));
    given(
        vec![opened(), closed(Some(OWNER)), reopened(Some(OWNER))],
        reopen(owner()),
    )
    .then_expect_error(DomainError::conflict("the support ticket is already open"));
}

// ---- state ----

#[test]
fn the_state_holds_who_and_how_many_and_no_text() {
    let ticket: SupportTicket = state_after(vec![
        opened(),
        replied(1, OWNER),
        replied(2, AGENT),
        assigned(AGENT, Some(AGENT)),
        closed(Some(OWNER)),
    ]);
    assert_eq!(
        ticket,
        SupportTicket {
            ticket_id: Some(TICKET),
            owner_id: Some(OWNER),
            status: TicketStatus::Closed,
            assignee_id: Some(AGENT),
            replies: 2,
        }
    );
    let snapshot = serde_json::to_string(&ticket).unwrap();
    assert!(!snapshot.contains("sealed"), "{snapshot}");
    let back: SupportTicket = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(back, ticket);
}

#[test]
fn a_stored_reply_number_is_what_the_state_counts() {
    // A stream written past the command side (or a repeated number) never
    // lowers the count.
    let ticket: SupportTicket = state_after(vec![opened(), replied(7, OWNER), replied(3, AGENT)]);
    assert_eq!(ticket.replies, 7);
}

#[test]
fn the_staff_are_the_roles_holding_tickets_staff_and_the_system() {
    assert!(is_staff(&Actor::System));
    assert!(is_staff(&as_role(AGENT, Role::Support)));
    assert!(is_staff(&as_role(ADMIN, Role::Admin)));
    assert!(!is_staff(&as_role(AUDITOR, Role::Auditor)));
    assert!(!is_staff(&owner()));
}

// ---- the texts as the command side checks them ----

#[test]
fn subjects_are_one_trimmed_line_of_1_to_200_characters() {
    assert_eq!(
        check_subject("  Where is my fill? ").unwrap(),
        "Where is my fill?"
    );
    assert_eq!(
        check_subject(&"ü".repeat(MAX_SUBJECT_CHARS)).unwrap().len(),
        2 * MAX_SUBJECT_CHARS
    );
    for subject in [
        "",
        "   ",
        "two\nlines",
        "tab\there",
        "nul\u{0}",
        &"x".repeat(MAX_SUBJECT_CHARS + 1),
    ] {
        let refusal = check_subject(subject).unwrap_err();
        assert!(
            matches!(
                &refusal,
                DomainError::Invalid {
                    field: "subject",
                    ..
                }
            ),
            "{subject:?}: {refusal:?}"
        );
    }
}

#[test]
fn bodies_are_free_text_of_1_to_10000_characters_with_line_feeds_and_tabs() {
    let text = "Hello,\n\n\tmy bot stopped.\nThanks ☃";
    assert_eq!(check_body(&format!("\n {text} \n")).unwrap(), text);
    assert_eq!(
        check_body(&"x".repeat(MAX_BODY_CHARS)).unwrap().len(),
        MAX_BODY_CHARS
    );
    for body in [
        "",
        " \n\t ",
        "carriage\r\nreturn",
        "nul\u{0}",
        "escape\u{1b}[31m",
        // A trailing U+0085 would be trimmed as white space.
        "c1\u{85}inside",
        "del\u{7f}",
        &"x".repeat(MAX_BODY_CHARS + 1),
    ] {
        let refusal = check_body(body).unwrap_err();
        assert!(
            matches!(&refusal, DomainError::Invalid { field: "body", .. }),
            "{body:?}: {refusal:?}"
        );
    }
}

// ---- wire format and registry ----

fn every_event() -> Vec<SupportTicketEvent> {
    vec![
        opened(),
        replied(1, OWNER),
        replied(2, AGENT),
        assigned(AGENT, Some(AGENT)),
        assigned(OTHER_AGENT, None),
        closed(Some(OWNER)),
        closed(None),
        reopened(Some(AGENT)),
        reopened(None),
    ]
}

#[test]
fn every_event_has_its_wire_name_and_version_and_round_trips() {
    let events = every_event();
    assert_wire_format(&events);
    for event in &events {
        assert_eq!(event.event_version(), "1.0", "{}", event.event_type());
        assert_eq!(
            AggregateType::of_event_type(&event.event_type()),
            Some(AggregateType::SupportTicket)
        );
    }
}

#[test]
fn every_event_names_the_owner_for_the_audit_export() {
    assert_eq!(
        AggregateType::SupportTicket.ownership(),
        Ownership::OwnerField("owner_id")
    );
    for event in every_event() {
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["owner_id"], serde_json::json!(OWNER), "{json}");
    }
}

#[test]
fn the_sealed_fields_of_each_event_are_the_listed_personal_fields() {
    for event in every_event() {
        let json = serde_json::to_value(&event).unwrap();
        let mut sealed: Vec<&str> = json
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, value)| value.get("sealed").is_some())
            .map(|(name, _)| name.as_str())
            .collect();
        sealed.sort();
        let mut listed = personal_fields(&event.event_type()).to_vec();
        listed.sort();
        assert_eq!(sealed, listed, "{}", event.event_type());
    }
}
