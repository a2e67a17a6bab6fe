//! The caller's trades and positions.

use crate::conformance::Conformance;

const TRADES: &str = "/api/v1/trading/trades";
const POSITIONS: &str = "/api/v1/trading/positions";

#[tokio::test]
async fn trading_queries_answer_as_documented() {
    let mut c = Conformance::spawn().await;
    let user = c.app.user().await;
    let token = Some(user.token.as_str());
    c.get(&format!("{TRADES}?limit=10&pair=XBT/USD"), token)
        .await;
    c.get(&format!("{TRADES}?limit=0"), token).await;
    c.get(&format!("{TRADES}?cursor=-1"), token).await;
    c.get(POSITIONS, token).await;
    c.get(&format!("{POSITIONS}?limit=1&cursor=1"), token).await;
    c.get(&format!("{POSITIONS}?cursor=abc"), token).await;
    c.get(&format!("{POSITIONS}?min_position={}.1", u64::MAX), token)
        .await;
    c.finish("trading");
}
