//! `--browser`: starts the lobby page (the `lobby` crate), tells the user where it is, and
//! shows how the command ended before it stops serving.

use std::sync::Arc;

use anyhow::Result;
use lobby::api::Actions;
use lobby::{Hub, Lobby};
use serde_json::json;

use super::output::Out;
use crate::cli::PageArgs;

/// Serves `hub`'s page with `actions` behind it; prints its URL (and opens the browser
/// with a one-time link unless `--no-open`).
pub(super) async fn start(hub: Arc<Hub>, actions: Arc<dyn Actions>, args: &PageArgs, out: &Out) -> Result<Lobby> {
    let lobby = Lobby::start(hub, actions).await?;
    eprintln!("lobby page (this computer only; keep the link to yourself):");
    eprintln!("  {}", lobby.url());
    out.event("lobby", json!({ "url": lobby.url() }));
    if !args.no_open {
        match lobby::browser::open(&lobby.launch_url()) {
            Ok(()) => eprintln!("opening it in your browser (if nothing opens, open the URL above)"),
            Err(e) => eprintln!("{e}: open the URL above in your browser"),
        }
    }
    Ok(lobby)
}

/// Shows how it ended (`Ok(summary)` or the error), waits briefly for the page to get it,
/// and stops serving.
pub(super) async fn end<T>(lobby: Lobby, result: &Result<T>, summary: impl FnOnce(&T) -> String) {
    let shown = match result {
        Ok(r) => Ok(summary(r)),
        Err(e) => Err(format!("{e:#}")),
    };
    lobby.hub().update(|v| v.finish(shown));
    lobby.close().await;
}
