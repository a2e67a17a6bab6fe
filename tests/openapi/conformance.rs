//! Real answers against the document: a session that calls every
//! documented operation, successes and refusals, and checks each answer's
//! status is documented for its operation and its JSON body validates
//! against the documented schema. Then the domain's own values against the
//! schemas the api crate writes for them.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use integration_tests::{TestApp, TestResponse, TestUser, GOOD_SECRET, PASSWORD};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{operations, served_document};

/// Checks answers against the document and remembers which operations
/// were checked.
struct Conformance {
    document: Value,
    checked: BTreeSet<(String, String)>,
}

impl Conformance {
    fn new(document: Value) -> Self {
        Conformance {
            document,
            checked: BTreeSet::new(),
        }
    }

    /// `schema` with the document's components beside it, so its
    /// `#/components/…` references resolve.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.as_object().cloned().expect("a schema object");
        root.insert("components".into(), self.document["components"].clone());
        jsonschema::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|error| panic!("{schema} does not compile: {error}"))
    }

    /// Whether `body` matches the documented JSON body of `status`.
    fn matches(&self, method: &str, template: &str, status: u16, body: &Value) -> bool {
        let schema = &self.document["paths"][template][method]["responses"][status.to_string()]
            ["content"]["application/json"]["schema"];
        self.validator(schema).is_valid(body)
    }

    fn check(&mut self, method: &str, template: &str, response: &TestResponse) {
        let operation = &self.document["paths"][template][method];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let status = response.status.as_u16().to_string();
        let documented = &operation["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which its documentation does not list: {}",
            response.body
        );
        let media_type = response
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        match (media_type, documented.get("content")) {
            (None, None) => {}
            (Some(media_type), Some(content)) => {
                let essence = |m: &str| m.split(';').next().unwrap().trim().to_string();
                let (_, described) = content
                    .as_object()
                    .unwrap()
                    .iter()
                    .find(|(key, _)| essence(key) == essence(&media_type))
                    .unwrap_or_else(|| {
                        panic!("{method} {template} {status}: {media_type} is not documented")
                    });
                if essence(&media_type) == "application/json" {
                    let validator = self.validator(&described["schema"]);
                    let errors: Vec<String> = validator
                        .iter_errors(&response.body)
                        .map(|e| format!("{} at {}", e, e.instance_path()))
                        .collect();
                    assert!(
                        errors.is_empty(),
                        "{method} {template} {status}: the body does not match the document:\n{}\n{}",
                        errors.join("\n"),
                        response.body
                    );
                }
            }
            (Some(media_type), None) if response.body.is_null() => {
                let _ = media_type;
            }
            (media_type, content) => {
                panic!("{method} {template} {status}: sent {media_type:?}, documented {content:?}")
            }
        }
        self.checked
            .insert((method.to_string(), template.to_string()));
    }

    /// Sends a request and checks its answer.
    async fn call(
        &mut self,
        app: &TestApp,
        method: &str,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        self.call_with(app, method, template, path, token, body, &[])
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn call_with(
        &mut self,
        app: &TestApp,
        method: &str,
        template: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let text = body.map(|b| b.to_string());
        let response = app
            .request(
                method.to_uppercase().parse::<Method>().unwrap(),
                path,
                token,
                text.as_deref(),
                headers,
            )
            .await;
        self.check(method, template, &response);
        response
    }
}

async fn user_with_role(app: &TestApp, role: domain::Role) -> TestUser {
    let user = app.user().await;
    let metadata = command_side::CommandMetadata::new("cli", Some(domain::Actor::System));
    muckard::operator::grant_role(&app.state.commands, &user.email, role, &metadata)
        .await
        .expect("grant role");
    app.login(&user.email).await
}

#[tokio::test]
async fn every_operation_answers_as_documented() {
    let app = TestApp::spawn().await;
    let mut c = Conformance::new(served_document(&app).await);
    let unknown = Uuid::new_v4();

    // The service's own routes.
    c.call(&app, "get", "/health", "/health", None, None).await;
    c.call(&app, "get", "/ready", "/ready", None, None).await;
    c.call(&app, "get", "/metrics", "/metrics", None, None)
        .await;
    c.call(&app, "get", "/openapi.json", "/openapi.json", None, None)
        .await;
    c.call(&app, "get", "/docs", "/docs", None, None).await;
    c.call(&app, "get", "/docs/", "/docs/", None, None).await;
    c.call(
        &app,
        "get",
        "/docs/{file}",
        "/docs/swagger-ui.css",
        None,
        None,
    )
    .await;
    c.call(&app, "get", "/docs/{file}", "/docs/nothing.css", None, None)
        .await;

    // Registering, logging in, refreshing.
    let register = "/api/v1/auth/register";
    let email = format!("ada-{}@example.com", Uuid::new_v4().simple());
    let credentials = json!({ "email": email, "password": PASSWORD });
    let created = c
        .call(
            &app,
            "post",
            register,
            register,
            None,
            Some(credentials.clone()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    // The check is not vacuous: a body of another shape would fail it.
    let mut wrong_shape = created.body.clone();
    wrong_shape["user_id"] = json!(5);
    assert!(!c.matches("post", register, 201, &wrong_shape));
    assert!(!c.matches("post", register, 201, &json!({ "user_id": Uuid::new_v4() })));
    let again = c
        .call(
            &app,
            "post",
            register,
            register,
            None,
            Some(credentials.clone()),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let invalid = c
        .call(
            &app,
            "post",
            register,
            register,
            None,
            Some(json!({ "email": 5 })),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unreadable = app
        .request(Method::POST, register, None, Some("{"), &[])
        .await;
    assert_eq!(unreadable.status, StatusCode::BAD_REQUEST);
    c.check("post", register, &unreadable);

    let login = "/api/v1/auth/login";
    let logged_in = c
        .call(&app, "post", login, login, None, Some(credentials))
        .await;
    assert_eq!(logged_in.status, StatusCode::OK);
    let wrong = c
        .call(
            &app,
            "post",
            login,
            login,
            None,
            Some(json!({ "email": email, "password": "not the password" })),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let refresh = "/api/v1/auth/refresh";
    let body = json!({ "refresh_token": logged_in.body["refresh_token"] });
    let renewed = c
        .call(&app, "post", refresh, refresh, None, Some(body.clone()))
        .await;
    assert_eq!(renewed.status, StatusCode::OK);
    let spent = c
        .call(&app, "post", refresh, refresh, None, Some(body))
        .await;
    assert_eq!(spent.status, StatusCode::UNAUTHORIZED);

    // The caller's user.
    let user = app.user().await;
    let token = Some(user.token.as_str());
    let me = "/api/v1/user/me";
    let changed = c
        .call(
            &app,
            "patch",
            me,
            me,
            token,
            Some(json!({ "display_name": "Ada" })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    let position = changed.body["position"].as_str().unwrap().to_string();
    c.call(
        &app,
        "patch",
        me,
        me,
        token,
        Some(json!({ "nickname": "A" })),
    )
    .await;
    c.call(
        &app,
        "patch",
        me,
        me,
        None,
        Some(json!({ "display_name": "A" })),
    )
    .await;
    let onboarding = "/api/v1/user/onboarding";
    let answers =
        json!({ "risk_profile": "balanced", "experience": "beginner", "terms_version": "2026-01" });
    let onboarded = c
        .call(
            &app,
            "post",
            onboarding,
            onboarding,
            token,
            Some(answers.clone()),
        )
        .await;
    assert_eq!(onboarded.status, StatusCode::OK);
    let position_after = onboarded.body["position"].as_str().unwrap().to_string();
    c.call(&app, "post", onboarding, onboarding, token, Some(answers))
        .await;
    let read = c
        .call(
            &app,
            "get",
            me,
            &format!("{me}?min_position={position_after}"),
            token,
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["risk_profile"], "balanced");
    c.call(
        &app,
        "get",
        me,
        &format!("{me}?min_position={position}&x=1"),
        token,
        None,
    )
    .await;

    // Keys.
    let connect = "/api/v1/kraken/connect";
    let key = c
        .call(
            &app,
            "post",
            connect,
            connect,
            token,
            Some(json!({ "api_key": "paper-key-1", "api_secret": GOOD_SECRET, "label": "main" })),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED);
    let key_id = key.body["key_id"].as_str().unwrap().to_string();
    c.call(
        &app,
        "post",
        connect,
        connect,
        token,
        Some(json!({ "api_key": "paper-withdraw-key", "api_secret": GOOD_SECRET })),
    )
    .await;
    let test = "/api/v1/kraken/keys/{key_id}/test";
    let tested = c
        .call(
            &app,
            "post",
            test,
            &format!("/api/v1/kraken/keys/{key_id}/test"),
            token,
            None,
        )
        .await;
    assert_eq!(tested.body["status"], "tested", "{}", tested.body);
    c.call(
        &app,
        "post",
        test,
        &format!("/api/v1/kraken/keys/{unknown}/test"),
        token,
        None,
    )
    .await;
    c.call(
        &app,
        "post",
        test,
        "/api/v1/kraken/keys/not-a-uuid/test",
        token,
        None,
    )
    .await;
    let one_key = "/api/v1/kraken/keys/{key_id}";
    let relabelled = c
        .call(
            &app,
            "patch",
            one_key,
            &format!("/api/v1/kraken/keys/{key_id}"),
            token,
            Some(json!({ "label": "renamed" })),
        )
        .await;
    assert_eq!(relabelled.status, StatusCode::OK);
    c.call(
        &app,
        "patch",
        one_key,
        &format!("/api/v1/kraken/keys/{key_id}"),
        token,
        Some(json!({ "api_key": "half" })),
    )
    .await;
    let keys = "/api/v1/kraken/keys";
    let listed = c
        .call(
            &app,
            "get",
            keys,
            &format!(
                "{keys}?min_position={}",
                relabelled.body["position"].as_str().unwrap()
            ),
            token,
            None,
        )
        .await;
    assert_eq!(listed.body["keys"].as_array().unwrap().len(), 1);

    // Bots.
    let bot = "/api/v1/bot";
    let configured = c
        .call(
            &app,
            "post",
            bot,
            bot,
            token,
            Some(json!({
                "key_id": key_id, "pair": "XBT/USD",
                "strategy": { "kind": "threshold", "buy_below": "90000", "sell_above": "110000", "quote_amount": "50" }
            })),
        )
        .await;
    assert_eq!(
        configured.status,
        StatusCode::CREATED,
        "{}",
        configured.body
    );
    let bot_id = configured.body["bot_id"].as_str().unwrap().to_string();
    c.call(
        &app,
        "post",
        bot,
        bot,
        token,
        Some(json!({ "key_id": key_id, "pair": "xbt-usd",
            "strategy": { "kind": "dca", "quote_amount": "25", "interval_secs": 60 } })),
    )
    .await;
    let stop = "/api/v1/bot/{bot_id}/stop";
    c.call(
        &app,
        "post",
        stop,
        &format!("/api/v1/bot/{bot_id}/stop"),
        token,
        None,
    )
    .await;
    let start = "/api/v1/bot/{bot_id}/start";
    let started = c
        .call_with(
            &app,
            "post",
            start,
            &format!("/api/v1/bot/{bot_id}/start"),
            token,
            None,
            &[("idempotency-key", "start-1")],
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let replayed = c
        .call_with(
            &app,
            "post",
            start,
            &format!("/api/v1/bot/{bot_id}/start"),
            token,
            None,
            &[("idempotency-key", "start-1")],
        )
        .await;
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    c.call(
        &app,
        "post",
        start,
        &format!("/api/v1/bot/{unknown}/start"),
        token,
        None,
    )
    .await;
    let status = "/api/v1/bot/{bot_id}/status";
    let seen = c
        .call(
            &app,
            "get",
            status,
            &format!(
                "/api/v1/bot/{bot_id}/status?min_position={}",
                started.body["position"].as_str().unwrap()
            ),
            token,
            None,
        )
        .await;
    assert_eq!(seen.body["state"], "starting", "{}", seen.body);
    c.call(
        &app,
        "get",
        status,
        &format!("/api/v1/bot/{unknown}/status"),
        token,
        None,
    )
    .await;
    c.call(&app, "get", bot, bot, token, None).await;

    let running = app.running_bot(&user).await;
    let trigger = "/api/v1/bot/{bot_id}/trigger-trade";
    let triggered = c
        .call(
            &app,
            "post",
            trigger,
            &format!("/api/v1/bot/{running}/trigger-trade"),
            token,
            None,
        )
        .await;
    assert_eq!(triggered.status, StatusCode::ACCEPTED, "{}", triggered.body);
    c.call(
        &app,
        "post",
        trigger,
        &format!("/api/v1/bot/{bot_id}/trigger-trade"),
        token,
        None,
    )
    .await;
    let stopping = c
        .call(
            &app,
            "post",
            stop,
            &format!("/api/v1/bot/{running}/stop"),
            token,
            Some(json!({ "reason": "enough" })),
        )
        .await;
    assert_eq!(stopping.status, StatusCode::ACCEPTED, "{}", stopping.body);
    c.call(
        &app,
        "delete",
        one_key,
        &format!("/api/v1/kraken/keys/{unknown}"),
        token,
        None,
    )
    .await;
    let spare = app.connected_key(&user, "paper-key-spare").await;
    let disconnected = c
        .call(
            &app,
            "delete",
            one_key,
            &format!("/api/v1/kraken/keys/{spare}"),
            token,
            None,
        )
        .await;
    assert_eq!(disconnected.status, StatusCode::OK, "{}", disconnected.body);

    // Trading.
    let trades = "/api/v1/trading/trades";
    c.call(
        &app,
        "get",
        trades,
        &format!("{trades}?limit=10&pair=XBT/USD"),
        token,
        None,
    )
    .await;
    c.call(
        &app,
        "get",
        trades,
        &format!("{trades}?limit=0"),
        token,
        None,
    )
    .await;
    let positions = "/api/v1/trading/positions";
    c.call(&app, "get", positions, positions, token, None).await;

    // Admins and auditors.
    let admin = user_with_role(&app, domain::Role::Admin).await;
    let users = "/api/v1/admin/users";
    let page = c
        .call(
            &app,
            "get",
            users,
            &format!("{users}?limit=2"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    c.call(&app, "get", users, users, token, None).await;
    let role = "/api/v1/admin/users/{user_id}/role";
    let assigned = c
        .call(
            &app,
            "post",
            role,
            &format!("/api/v1/admin/users/{}/role", user.id),
            Some(&admin.token),
            Some(json!({ "role": "auditor" })),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    c.call(
        &app,
        "post",
        role,
        &format!("/api/v1/admin/users/{}/role", admin.id),
        token,
        Some(json!({ "role": "user" })),
    )
    .await;
    c.call(
        &app,
        "post",
        role,
        &format!("/api/v1/admin/users/{unknown}/role"),
        Some(&admin.token),
        Some(json!({ "role": "user" })),
    )
    .await;
    let events = "/api/v1/audit/streams/{aggregate_type}/{id}/events";
    let state = "/api/v1/audit/streams/{aggregate_type}/{id}/state";
    let read = c
        .call(
            &app,
            "get",
            events,
            &format!("/api/v1/audit/streams/Bot/{running}/events"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert!(read.body["events"].as_array().unwrap().len() >= 3);
    c.call(
        &app,
        "get",
        events,
        &format!("/api/v1/audit/streams/User/{unknown}/events"),
        Some(&admin.token),
        None,
    )
    .await;
    c.call(
        &app,
        "get",
        events,
        &format!("/api/v1/audit/streams/Robot/{running}/events"),
        Some(&admin.token),
        None,
    )
    .await;
    for query in ["", "?at_sequence=1", "?as_of=2020-01-01T00:00:00Z"] {
        let folded = c
            .call(
                &app,
                "get",
                state,
                &format!("/api/v1/audit/streams/Bot/{running}/state{query}"),
                Some(&admin.token),
                None,
            )
            .await;
        assert_eq!(folded.status, StatusCode::OK, "{}", folded.body);
    }
    let regular = app.user().await;
    c.call(
        &app,
        "get",
        state,
        &format!("/api/v1/audit/streams/User/{}/state", regular.id),
        Some(&regular.token),
        None,
    )
    .await;

    // Every documented operation was called at least once.
    let missed: Vec<_> = operations(&c.document)
        .into_iter()
        .filter(|operation| !c.checked.contains(operation))
        .collect();
    assert!(missed.is_empty(), "never called: {missed:?}");
}

/// The api crate writes the schemas of the domain's types (so `domain`
/// stays free of HTTP); every value the domain can put on the wire must
/// match them.
#[test]
fn domain_values_match_their_documented_schemas() {
    use domain::services::{KeyPermission, KeyStatus};
    use domain::user::{Experience, RiskProfile};
    use domain::AggregateType;
    use domain::{Role, Side, Strategy};
    use projections::audit::stream::Until;
    use rust_decimal::Decimal;

    let document = serde_json::to_value(api::openapi::document()).unwrap();
    let c = Conformance::new(document);
    let check = |name: &str, values: Vec<Value>| {
        let validator = c.validator(&json!({ "$ref": format!("#/components/schemas/{name}") }));
        assert!(!values.is_empty());
        for value in values {
            assert!(
                validator.is_valid(&value),
                "{value} does not match the documented schema {name}"
            );
        }
    };
    // Each list names every variant: a new one fails to compile here.
    let role = |r: Role| match r {
        Role::User | Role::Admin | Role::Auditor => serde_json::to_value(r).unwrap(),
    };
    check(
        "Role",
        vec![role(Role::User), role(Role::Admin), role(Role::Auditor)],
    );
    let risk = |r: RiskProfile| match r {
        RiskProfile::Conservative | RiskProfile::Balanced | RiskProfile::Aggressive => {
            serde_json::to_value(r).unwrap()
        }
    };
    check(
        "RiskProfile",
        vec![
            risk(RiskProfile::Conservative),
            risk(RiskProfile::Balanced),
            risk(RiskProfile::Aggressive),
        ],
    );
    let experience = |e: Experience| match e {
        Experience::Beginner | Experience::Intermediate | Experience::Expert => {
            serde_json::to_value(e).unwrap()
        }
    };
    check(
        "Experience",
        vec![
            experience(Experience::Beginner),
            experience(Experience::Intermediate),
            experience(Experience::Expert),
        ],
    );
    let permission = |p: KeyPermission| match p {
        KeyPermission::QueryFunds
        | KeyPermission::QueryOrders
        | KeyPermission::Trade
        | KeyPermission::Withdraw => serde_json::to_value(p).unwrap(),
    };
    check(
        "KeyPermission",
        vec![
            permission(KeyPermission::QueryFunds),
            permission(KeyPermission::QueryOrders),
            permission(KeyPermission::Trade),
            permission(KeyPermission::Withdraw),
        ],
    );
    let status = |s: KeyStatus| match s {
        KeyStatus::Untested
        | KeyStatus::Tested
        | KeyStatus::TestFailed
        | KeyStatus::Disconnected => serde_json::to_value(s).unwrap(),
    };
    check(
        "KeyStatus",
        vec![
            status(KeyStatus::Untested),
            status(KeyStatus::Tested),
            status(KeyStatus::TestFailed),
            status(KeyStatus::Disconnected),
        ],
    );
    let side = |s: Side| match s {
        Side::Buy | Side::Sell => serde_json::to_value(s).unwrap(),
    };
    check("Side", vec![side(Side::Buy), side(Side::Sell)]);
    let strategy = |s: Strategy| match s {
        Strategy::Dca { .. } | Strategy::Threshold { .. } => serde_json::to_value(s).unwrap(),
    };
    check(
        "Strategy",
        vec![
            strategy(Strategy::Dca {
                quote_amount: Decimal::new(2500, 2),
                interval_secs: 60,
            }),
            strategy(Strategy::Threshold {
                buy_below: Decimal::new(90_000, 0),
                sell_above: Decimal::new(110_000, 0),
                quote_amount: Decimal::new(50, 0),
            }),
        ],
    );
    check(
        "Pair",
        vec![serde_json::to_value(domain::Pair::parse("XBT/USD").unwrap()).unwrap()],
    );
    check(
        "AggregateType",
        AggregateType::ALL
            .iter()
            .map(|k| serde_json::to_value(k).unwrap())
            .collect(),
    );
    let until = |u: Until| match u {
        Until::End | Until::AsOf { .. } | Until::Sequence { .. } => {
            serde_json::to_value(u).unwrap()
        }
    };
    check(
        "Until",
        vec![
            until(Until::End),
            until(Until::AsOf {
                as_of: chrono::Utc::now(),
            }),
            until(Until::Sequence { sequence: 3 }),
        ],
    );
    // And the schemas are not vacuous: a value outside them is refused.
    let validator = c.validator(&json!({ "$ref": "#/components/schemas/Strategy" }));
    assert!(!validator.is_valid(&json!({ "kind": "martingale" })));
    assert!(!validator.is_valid(&json!({ "kind": "dca", "quote_amount": 25, "interval_secs": 60 })));
}
