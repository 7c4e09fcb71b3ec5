//! The host's page: the invitation link and its QR code, each roster place's state as the
//! admission goes, and the Start and Cancel controls (fed to the host's flow as
//! [`gateway::invite::Command`]s).

use std::sync::Arc;

use gateway::invite::{Command as HostCommand, Invitation};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::{Actions, Command, Problem};
use crate::hub::Hub;
use crate::qr;
use crate::view::Level;

/// The host's side of the page.
pub struct HostPage {
    hub: Arc<Hub>,
    commands: mpsc::UnboundedSender<HostCommand>,
}

impl HostPage {
    /// The page on `hub`; Start and Cancel go to `commands` (the host flow's steering).
    pub fn new(hub: Arc<Hub>, commands: mpsc::UnboundedSender<HostCommand>) -> Arc<HostPage> {
        Arc::new(HostPage { hub, commands })
    }

    /// The published session: its link, QR code and roster.
    pub fn invitation(&self, inv: &Invitation) {
        let link = inv.short_url.clone().unwrap_or_else(|| inv.url.clone());
        let svg = qr::svg(&link);
        let has_qr = svg.is_some();
        self.hub.set_qr(svg);
        let d = &inv.signed.descriptor;
        self.hub.update(|v| {
            v.session(d, d.pid_of(&d.host), Default::default());
            v.invitation(&link, has_qr);
            v.log(Level::Info, "invitation published: share the link or the QR code");
        });
    }
}

#[async_trait::async_trait]
impl Actions for HostPage {
    async fn act(&self, c: Command) -> Result<Value, Problem> {
        let can = self.hub.view().can;
        match c {
            Command::Start if can.start => {
                self.hub.update(|v| v.log(Level::Info, "starting: the final roster goes to everyone"));
                self.commands.send(HostCommand::Start).map_err(|_| Problem::not_now("starting"))?;
                Ok(json!({}))
            }
            Command::Cancel { reason } if can.cancel => {
                let reason = reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "the host cancelled".into());
                self.hub.update(|v| v.log(Level::Error, format!("cancelling: {reason}")));
                self.commands.send(HostCommand::Cancel(reason)).map_err(|_| Problem::not_now("cancelling"))?;
                Ok(json!({}))
            }
            Command::Start => Err(Problem::not_now("starting")),
            Command::Cancel { .. } => Err(Problem::not_now("cancelling")),
            _ => Err(Problem::new(404, "not-here", "the host neither signs in nor joins")),
        }
    }
}
