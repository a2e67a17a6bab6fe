//! The service's own routes: health, readiness, metrics, the document and
//! its Swagger UI, the AsyncAPI document and its schemas.

use crate::conformance::Conformance;

#[tokio::test]
async fn service_endpoints_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/",
        "/docs/swagger-ui.css",
        "/docs/nothing.css",
        "/app",
        "/app/",
        "/app/style.css",
        "/app/nothing.css",
        "/app/views/nothing.js",
        "/asyncapi.json",
        "/schemas/kafka/envelope.schema.json",
        "/schemas/amqp/nothing.json",
        "/schemas/kafka/events/bot.started.schema.json",
        "/schemas/kafka/events/nothing.json",
    ] {
        c.get(path, None).await;
    }
    c.finish("service");
}
