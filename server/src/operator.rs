//! Operator commands run from the `muckard` CLI.

use command_side::{CommandMetadata, CommandSide};
use domain::{Actor, Role};
use event_log::Position;

/// Grants `role` to the user registered with `email`, as the System actor.
/// This is how the first admin is made; the grant is a `user.role_assigned`
/// event like any other.
pub async fn grant_role(
    commands: &CommandSide,
    email: &str,
    role: Role,
    metadata: &CommandMetadata,
) -> anyhow::Result<(uuid::Uuid, Position)> {
    let user_id = commands
        .user_id_by_email(email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user registered with email {email}"))?;
    let position = commands
        .assign_role(Actor::System, user_id, role, metadata)
        .await?;
    Ok((user_id, position))
}
