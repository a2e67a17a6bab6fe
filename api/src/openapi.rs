//! The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`, and
//! the interactive page (Swagger UI) at `/docs`.
//!
//! The document is not written by hand: each handler carries a
//! `#[utoipa::path]` annotation, and [`crate::route_groups`] registers every route
//! from those annotations with `utoipa_axum::routes!`, so the router and the
//! document come from the same place. Bodies are the handlers' own response
//! types (`ToSchema`). What no single handler states is added here, from the
//! same route groups the router is built of: the bearer scheme, the
//! `Idempotency-Key` header of the command group, the request-id headers,
//! and the responses every `/api` route can give (429, 500, 503).
//!
//! The domain's types appear in bodies; their schemas are written here, in
//! [`schemas`], so that `domain` stays free of HTTP concerns. The `openapi`
//! integration test serialises every variant of each domain type and checks
//! it against these schemas, so they cannot drift apart unnoticed.

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    ResponseBuilder, Type,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_swagger_ui::Config;

use crate::error::{ApiError, ErrorResponse};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// The name of the bearer security scheme; handlers name it in
/// `security(("bearer" = []))`.
pub const BEARER: &str = "bearer";

/// Text with no control character (Unicode's `Cc`: U+0000 to U+001F,
/// U+007F to U+009F), which the API refuses in any string a client sends
/// (`crate::extract`): the pattern of every request-body string the
/// document does not constrain further.
pub const NO_CONTROL_CHARACTERS: &str = r"^[^\u0000-\u001f\u007f-\u009f]*$";

/// One line of text the domain trims (`domain::common::bounded_text`): no
/// control character and at least one character that is not white space
/// (Unicode's `White_Space`, as Rust's `char::is_whitespace`). Its length
/// bounds count the trimmed text.
pub const NON_BLANK_LINE: &str = concat!(
    r"^[^\u0000-\u001f\u007f-\u009f]*",
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\u0000-\u001f\u007f-\u009f]*$"
);

/// Free text (a support message's body, `domain::support_ticket::check_body`):
/// no control character but line feeds and tabs, and at least one
/// character that is not white space. Its length bounds count the trimmed
/// text.
pub const FREE_TEXT: &str = concat!(
    r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*",
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]*$"
);

/// An exchange credential's half: no white space and no control character
/// (`command_side::exchange_keys`); its length bounds are the field's.
pub const NO_SPACE_TEXT: &str =
    r"^[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$";

/// The document, built once from the route groups.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(build);
    &DOCUMENT
}

fn document_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut value = serde_json::to_value(document()).expect("the OpenAPI document serialises");
        refine(&mut value);
        serde_json::to_string_pretty(&value).expect("the OpenAPI document serialises")
    });
    &JSON
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    summary = "This OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API, generated from the code",
            content_type = "application/json", body = Object),
    ),
)]
pub async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

/// `GET /docs`: to the page, whose assets are relative to `/docs/`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "service",
    summary = "The interactive documentation (redirect)",
    responses(
        (status = 303, description = "See the interactive documentation at `/docs/`",
            headers(("location" = String, description = "`/docs/`"))),
    ),
)]
pub async fn docs() -> Redirect {
    Redirect::to("/docs/")
}

/// `GET /docs/`: Swagger UI, reading [`DOCUMENT_PATH`].
#[utoipa::path(
    get,
    path = "/docs/",
    tag = "service",
    summary = "The interactive documentation (Swagger UI)",
    responses(
        (status = 200, description = "Swagger UI's page; its assets are served below `/docs/`",
            content_type = "text/html", body = String),
    ),
)]
pub async fn docs_page() -> Response {
    swagger_file("index.html")
}

/// `GET /docs/{file}`: Swagger UI's scripts, styles and icons, built into
/// the binary.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "service",
    summary = "An asset of the interactive documentation",
    params(("file" = String, Path, description = "An asset's file name, e.g. `swagger-ui-bundle.js`")),
    responses(
        (status = 200, description = "The asset, with its media type", content(
            (String = "application/javascript"),
            (String = "text/css"),
            (String = "text/html"),
            (String = "image/png"),
        )),
        (status = 404, description = "No such asset", body = ErrorResponse),
    ),
)]
pub async fn docs_asset(Path(file): Path<String>) -> Response {
    swagger_file(&file)
}

fn swagger_file(file: &str) -> Response {
    static CONFIG: LazyLock<Arc<Config<'static>>> =
        LazyLock::new(|| Arc::new(Config::new([DOCUMENT_PATH]).try_it_out_enabled(true)));
    match utoipa_swagger_ui::serve(file, CONFIG.clone()) {
        Ok(Some(found)) => (
            [(header::CONTENT_TYPE, found.content_type)],
            found.bytes.into_owned(),
        )
            .into_response(),
        Ok(None) => ApiError::NotFound("no such file".to_string()).into_response(),
        Err(error) => ApiError::Internal(anyhow::anyhow!("serving Swagger UI's {file}: {error}"))
            .into_response(),
    }
}

fn build() -> OpenApi {
    let crate::RouteGroups {
        service,
        queries,
        audit,
        commands,
        sessions,
    } = crate::route_groups();
    let mut commands = commands.into_openapi();
    add_idempotency(&mut commands);
    let mut document = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Muckard ledger API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(DESCRIPTION))
                .build(),
        )
        .build();
    for part in [
        service.into_openapi(),
        queries.into_openapi(),
        audit.into_openapi(),
        commands,
        sessions.into_openapi(),
    ] {
        document.merge(part);
    }
    let components = document.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        BEARER.to_string(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .description(Some(
                    "An access token from `POST /api/v1/auth/login` or `/api/v1/auth/refresh`",
                ))
                .build(),
        ),
    );
    let mut schemas = vec![
        (ErrorResponse::name().into_owned(), ErrorResponse::schema()),
        // Named by a query parameter, which does not collect it.
        (
            schemas::AccountState::name().into_owned(),
            schemas::AccountState::schema(),
        ),
    ];
    ErrorResponse::schemas(&mut schemas);
    components.schemas.extend(schemas);
    add_common(&mut document);
    add_permissions(&mut document);
    document
}

/// Each operation's permission, from [`crate::permissions::OPERATIONS`]:
/// an `x-permission` extension (absent on public operations), a line of
/// its description naming the permission and the roles that hold it, and
/// the 403 of a caller whose role does not.
fn add_permissions(document: &mut OpenApi) {
    use crate::permissions::{access_of, roles_admitted, Access};
    for item in document.paths.paths.values_mut() {
        for operation in operations(item) {
            let Some(Access::Requires(permission)) =
                operation.operation_id.as_deref().and_then(access_of)
            else {
                continue;
            };
            let roles: Vec<&str> = roles_admitted(Access::Requires(permission))
                .into_iter()
                .map(|role| role.as_str())
                .collect();
            let line = format!("Permission: `{permission}` (held by {}).", roles.join(", "));
            operation.description = Some(match operation.description.take() {
                Some(text) if !text.is_empty() => format!("{text}\n\n{line}"),
                _ => line,
            });
            let extensions = operation.extensions.get_or_insert_with(Default::default);
            extensions.insert(
                "x-permission".to_string(),
                serde_json::Value::String(permission.as_str().to_string()),
            );
            if roles.len() < domain::Role::ALL.len() {
                add_error(
                    operation,
                    "403",
                    &format!("The caller's role does not hold `{permission}`"),
                    None,
                );
            }
        }
    }
}

const DESCRIPTION: &str = "The event-sourced back end of the Muckard trading-bot platform. \
Commands answer with a `position` token; pass it to a query as `min_position` to read your \
own writes. Every error is `{\"error\": {\"code\", \"message\", \"field\"?, \"reason\"?}}`.";

/// The command group's routes replay a repeated `Idempotency-Key`.
fn add_idempotency(part: &mut OpenApi) {
    for item in part.paths.paths.values_mut() {
        for operation in operations(item) {
            push_parameter(
                operation,
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Repeating a key replays the first response (2xx, or a 4xx other than \
                         409) and appends nothing; the same key with another body is a 422; \
                         while the first request is in flight, a 409; a key that is not 1 to \
                         255 visible ASCII characters, a 400",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(crate::idempotency::KEY_PATTERN)),
                    ))
                    .build(),
            );
            for (status, response) in operation.responses.responses.iter_mut() {
                if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                    response.headers.insert(
                        "idempotent-replayed".to_string(),
                        string_header("`true` when this is the stored first response to the key"),
                    );
                }
            }
            add_error(operation, "409", "The state does not allow it, a concurrent change won, or the first request with this Idempotency-Key is still in flight", None);
            add_error(
                operation,
                "422",
                "A field is invalid, or the Idempotency-Key was used with another body",
                None,
            );
        }
    }
}

/// What every route, or every `/api` route, has in common.
fn add_common(document: &mut OpenApi) {
    for (path, item) in document.paths.paths.iter_mut() {
        let api = path.starts_with("/api/");
        for operation in operations(item) {
            let request_id = if api {
                header_parameter(
                    crate::REQUEST_ID_HEADER,
                    "Names the request in the logs and in the metadata of the events it appends; \
                     echoed on the response (one is made up when absent, empty or longer than \
                     128 characters)",
                )
            } else {
                // Outside `/api` nothing reaches event metadata: an id with
                // a control character is replaced, not refused.
                ParameterBuilder::new()
                    .name(crate::REQUEST_ID_HEADER)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Names the request in the logs; echoed on the response (one is made up \
                         when absent, empty, longer than 128 characters or holding a control \
                         character)",
                    ))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build()
            };
            push_parameter(operation, request_id);
            if api {
                push_parameter(
                    operation,
                    header_parameter(
                        "x-correlation-id",
                        "Carried into the metadata of the events the request appends",
                    ),
                );
                push_parameter(
                    operation,
                    header_parameter(
                        "traceparent",
                        "W3C trace context, carried into event metadata",
                    ),
                );
            }
            let secured = operation
                .security
                .as_ref()
                .is_some_and(|requirements| !requirements.is_empty());
            if secured {
                add_error(
                    operation,
                    "401",
                    "No bearer token, or an invalid or expired one",
                    Some(("www-authenticate", "`Bearer`")),
                );
            }
            if api {
                add_error(
                    operation,
                    "400",
                    "A request header that reaches event metadata (`x-request-id`, \
                     `x-correlation-id`, `idempotency-key`, `traceparent`) holds a control \
                     character; `field` names it",
                    None,
                );
                add_error(
                    operation,
                    "429",
                    "Too many requests from this client; retry after `Retry-After` seconds",
                    Some(("retry-after", "Seconds to wait before retrying")),
                );
                add_error(
                    operation,
                    "503",
                    "A dependency (the database) is unavailable, or a read model has not reached \
                     `min_position` in time",
                    Some(("retry-after", "Seconds to wait before retrying")),
                );
                add_error(
                    operation,
                    "500",
                    "An unexpected failure; its cause is logged, never shown",
                    None,
                );
            }
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    response.headers.insert(
                        crate::REQUEST_ID_HEADER.to_string(),
                        string_header("The request's id, as given or made up"),
                    );
                    response.headers.insert(
                        crate::INSTANCE_HEADER.to_string(),
                        string_header("The instance that answered (`MUCKARD_INSTANCE`)"),
                    );
                }
            }
        }
    }
}

/// What the typed document cannot say, added to its JSON: a request
/// field's `pattern = "{NAME}"` (an attribute takes a literal, not a
/// constant) becomes the constant `NAME` of this module ([`NON_BLANK_LINE`],
/// [`NO_SPACE_TEXT`], [`FREE_TEXT`]); every string of
/// a request body without a pattern, format or enumeration of its own
/// gets [`NO_CONTROL_CHARACTERS`] (the API refuses a control character in
/// any of them, see `crate::extract`), a key's new credential needs
/// both halves (`dependentRequired`), and a profile change at least one
/// field (`minProperties`).
fn refine(document: &mut serde_json::Value) {
    fill_patterns(document);
    let mut bodies = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for item in paths.values() {
            for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
                let content = &operation["requestBody"]["content"];
                for media in content.as_object().into_iter().flat_map(|o| o.values()) {
                    collect_refs(&media["schema"], &mut bodies);
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = bodies.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = &mut document["components"]["schemas"][&name];
        forbid_control_characters(schema, &mut bodies);
    }
    // utoipa 5.5 writes `min_properties` as `maxProperties`, so it is set
    // here: a profile change names at least one field.
    let profile = &mut document["components"]["schemas"]["UpdateProfileRequest"];
    if profile.is_object() {
        profile["minProperties"] = serde_json::json!(1);
    }
    let update = &mut document["components"]["schemas"]["UpdateRequest"];
    if update.is_object() {
        update["dependentRequired"] = serde_json::json!({
            "api_key": ["api_secret"],
            "api_secret": ["api_key"],
        });
    }
}

fn fill_patterns(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(fields) => {
            if let Some(serde_json::Value::String(pattern)) = fields.get_mut("pattern") {
                let named = match pattern.as_str() {
                    "{NON_BLANK_LINE}" => Some(NON_BLANK_LINE),
                    "{NO_SPACE_TEXT}" => Some(NO_SPACE_TEXT),
                    "{FREE_TEXT}" => Some(FREE_TEXT),
                    other => {
                        assert!(!other.starts_with('{'), "no pattern constant {other}");
                        None
                    }
                };
                if let Some(named) = named {
                    *pattern = named.to_string();
                }
            }
            fields.values_mut().for_each(fill_patterns);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(fill_patterns),
        _ => {}
    }
}

/// The component a schema object refers to (`$ref:
/// #/components/schemas/<name>`), if it does.
fn component_ref(fields: &serde_json::Map<String, serde_json::Value>) -> Option<&str> {
    fields
        .get("$ref")
        .and_then(|r| r.as_str())
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
}

fn collect_refs(schema: &serde_json::Value, found: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(fields) => {
            if let Some(name) = component_ref(fields) {
                found.push(name.to_string());
            }
            fields.values().for_each(|v| collect_refs(v, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, found)),
        _ => {}
    }
}

/// Adds [`NO_CONTROL_CHARACTERS`] to every string schema in `schema` that
/// has no pattern, format or enumeration, and collects the components it
/// refers to.
fn forbid_control_characters(schema: &mut serde_json::Value, refs: &mut Vec<String>) {
    match schema {
        serde_json::Value::Object(fields) => {
            if let Some(name) = component_ref(fields) {
                refs.push(name.to_string());
            }
            let is_string = match fields.get("type") {
                Some(serde_json::Value::String(t)) => t == "string",
                Some(serde_json::Value::Array(types)) => types.iter().any(|t| t == "string"),
                _ => false,
            };
            let constrained = ["pattern", "format", "enum", "const"]
                .iter()
                .any(|k| fields.contains_key(*k));
            if is_string && !constrained {
                fields.insert("pattern".into(), NO_CONTROL_CHARACTERS.into());
            }
            fields
                .values_mut()
                .for_each(|v| forbid_control_characters(v, refs));
        }
        serde_json::Value::Array(items) => items
            .iter_mut()
            .for_each(|v| forbid_control_characters(v, refs)),
        _ => {}
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// A request header that may reach event metadata: no control character
/// (a 400 naming it otherwise), as `refused_header` checks.
fn header_parameter(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(r"^[^\u0000-\u001f\u007f]*$")),
        ))
        .build()
}

fn push_parameter(operation: &mut Operation, parameter: utoipa::openapi::path::Parameter) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let taken = parameters.iter().any(|p| {
        p.name.eq_ignore_ascii_case(&parameter.name) && p.parameter_in == parameter.parameter_in
    });
    if !taken {
        parameters.push(parameter);
    }
}

fn string_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

/// Adds an error response with the common body, unless the handler
/// already documents that status.
fn add_error(
    operation: &mut Operation,
    status: &str,
    description: &str,
    header: Option<(&str, &str)>,
) {
    if operation.responses.responses.contains_key(status) {
        return;
    }
    let mut response = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(ErrorResponse::name())))
            .build(),
    );
    if let Some((name, description)) = header {
        response = response.header(name, string_header(description));
    }
    operation
        .responses
        .responses
        .insert(status.to_string(), RefOr::T(response.build()));
}

/// Schemas of the domain's types as they appear on the wire. `domain`
/// stays free of HTTP concerns; the `openapi` test checks every variant of
/// each domain type against these.
pub mod schemas {
    use serde::Serialize;
    use utoipa::ToSchema;

    /// A user's role.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Role {
        User,
        Support,
        Admin,
        Auditor,
    }

    /// Whether an account may log in.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum AccountState {
        Active,
        Disabled,
    }

    /// Which notifications a user wants by email.
    #[derive(Serialize, ToSchema)]
    #[allow(dead_code)]
    pub struct NotificationPreferences {
        /// A bot's fill.
        trade_fills: bool,
        /// A bot stopped by an error, a key that failed its test.
        bot_errors: bool,
        /// Log-ins, password and email changes.
        security: bool,
        /// Which notifications the user's list gets: `all` (the default
        /// when absent), `errors_only` (bot errors and failed key tests)
        /// or `none`.
        #[schema(nullable = false)]
        in_app: Option<NotificationLevel>,
    }

    /// What a notification is about.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum NotificationKind {
        BotError,
        BotStopped,
        KeyTestFailed,
        TradeExecuted,
        SupportReply,
    }

    /// A candle's length: one minute to one day.
    #[derive(Serialize, ToSchema)]
    pub enum CandleInterval {
        #[serde(rename = "1m")]
        OneMinute,
        #[serde(rename = "5m")]
        FiveMinutes,
        #[serde(rename = "15m")]
        FifteenMinutes,
        #[serde(rename = "1h")]
        OneHour,
        #[serde(rename = "4h")]
        FourHours,
        #[serde(rename = "1d")]
        OneDay,
    }

    /// Which notifications a user's list gets.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum NotificationLevel {
        All,
        ErrorsOnly,
        None,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum RiskProfile {
        Conservative,
        Balanced,
        Aggressive,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Experience {
        Beginner,
        Intermediate,
        Expert,
    }

    /// A permission an exchange key holds, as the exchange reported it.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum KeyPermission {
        QueryFunds,
        QueryOrders,
        Trade,
        Withdraw,
    }

    /// An exchange key's state.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum KeyStatus {
        Untested,
        Tested,
        TestFailed,
        Disconnected,
    }

    /// A bot's state in the `bot_status` read model.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum BotState {
        Configured,
        Starting,
        Running,
        Stopping,
        Stopped,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Side {
        Buy,
        Sell,
    }

    /// A currency pair, base and quote, each 2 to 10 upper-case letters or
    /// digits.
    #[derive(Serialize, ToSchema)]
    #[schema(pattern = "^[A-Z0-9]{2,10}/[A-Z0-9]{2,10}$", example = "XBT/USD")]
    pub struct Pair(String);

    /// An exact decimal number, as a string.
    #[derive(Serialize, ToSchema)]
    #[schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$", example = "25.00")]
    pub struct ExactDecimal(String);

    /// Where a command's events stand in commit order
    /// (`<transaction>.<global position>`); a query's `min_position`.
    #[derive(Serialize, ToSchema)]
    #[schema(pattern = r"^[0-9]{1,19}\.[0-9]{1,18}$", example = "1234.56")]
    pub struct Position(String);

    /// How a bot decides to trade. Amounts are exact decimals in the quote
    /// currency, as strings. Configuring one outside these bounds is a 422
    /// naming the field: `quote_amount` above 0, at most the operator's
    /// `BOT_MAX_QUOTE_AMOUNT` (1000000 unless configured) and at most 8
    /// decimal places; `buy_below` and `sell_above` above 0, at most
    /// 1000000000000, at most 12 decimal places, `buy_below` below
    /// `sell_above`; `interval_secs` from the operator's
    /// `BOT_MIN_INTERVAL_SECS` (60 unless configured) to 2592000.
    #[derive(Serialize, ToSchema)]
    #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
    pub enum Strategy {
        /// Dollar-cost averaging: buy `quote_amount` every `interval_secs`
        /// (from `BOT_MIN_INTERVAL_SECS`, 60 unless configured, to 2592000).
        Dca {
            /// Above 0, at most `BOT_MAX_QUOTE_AMOUNT` (1000000 unless
            /// configured), at most 8 decimal places.
            quote_amount: ExactDecimal,
            /// Seconds, from `BOT_MIN_INTERVAL_SECS` (60 unless
            /// configured; the operator may allow down to 1) to 2592000.
            #[schema(minimum = 1, maximum = 2592000)]
            interval_secs: u64,
        },
        /// Buy `quote_amount` when the price falls to `buy_below`, sell the
        /// position when it rises to `sell_above`.
        Threshold {
            /// Above 0 and below `sell_above`, at most 1000000000000, at
            /// most 12 decimal places.
            buy_below: ExactDecimal,
            /// Above `buy_below`, at most 1000000000000, at most 12
            /// decimal places.
            sell_above: ExactDecimal,
            /// Above 0, at most `BOT_MAX_QUOTE_AMOUNT` (1000000 unless
            /// configured), at most 8 decimal places.
            quote_amount: ExactDecimal,
        },
    }

    /// The aggregate types of the log.
    #[derive(Serialize, ToSchema)]
    pub enum AggregateType {
        User,
        ExchangeKey,
        Bot,
        Portfolio,
        SupportTicket,
        Notification,
    }

    /// Whether a support ticket waits for work.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum TicketStatus {
        Open,
        Closed,
    }

    /// Where an audit read stopped.
    #[derive(Serialize, ToSchema)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    pub enum Until {
        /// Every event.
        End,
        /// Events recorded at or before `as_of`.
        AsOf {
            as_of: chrono::DateTime<chrono::Utc>,
        },
        /// Events up to and including `sequence`.
        Sequence { sequence: i64 },
    }

    /// One stored event as an auditor reads it, with its hashes.
    #[derive(Serialize, ToSchema)]
    pub struct AuditEvent {
        pub sequence: i64,
        pub event_id: uuid::Uuid,
        pub event_type: String,
        pub event_version: String,
        pub global_position: i64,
        /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` in UTC, as hashed.
        pub recorded_at: String,
        /// The stored event payload.
        pub payload: serde_json::Value,
        /// The command's metadata stored with the event.
        pub metadata: serde_json::Value,
        pub prev_hash: String,
        pub hash: String,
    }

    /// An aggregate's state after a prefix of its stream.
    #[derive(Serialize, ToSchema)]
    pub struct AuditState {
        pub aggregate_type: AggregateType,
        pub aggregate_id: String,
        pub until: Until,
        /// The sequence of the last event folded in; 0 before the first.
        pub sequence: i64,
        /// The aggregate as the domain serialises it; `null` before the
        /// first event.
        pub state: serde_json::Value,
        pub events: Vec<AuditEvent>,
    }
}
