//! Command-line definitions (clap). Only parsing lives here; `cmd/` runs the commands.
//!
//! `mpc` holds the MPC session commands' arguments, `identity` the `did` and `message`
//! commands, `proof` the `proof` and `credential` commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod identity;
mod mpc;
mod proof;

pub use identity::{AnonEnc, DidCommand, MessageCommand, Method, Select};
pub use mpc::{DemoArgs, InviteArgs, JoinArgs, MpcLocal, PageArgs};
pub use proof::{CredentialCommand, CredentialIssueArgs, ProofCommand, ProofSiweArgs, ProofVpArgs};

/// didmpc: secure multiparty computation between DIDs, across NATs.
#[derive(Parser, Debug)]
#[command(name = "didmpc", version, about, long_about = None)]
pub struct Cli {
    /// Keystore and state directory [default: the user's data dir + /didmpc].
    #[arg(long, global = true, env = "DIDMPC_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Let did:web resolution reach this machine or private networks: `loopback`, `1` (loopback
    /// and private) or `0` (public addresses only, the default). A mediator takes this from its
    /// config instead (`resolver.allow_private_addresses`).
    #[arg(long, global = true, env = "DIDMPC_RESOLVE_PRIVATE", value_name = "0|loopback|1")]
    pub resolve_private: Option<String>,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, inspect, resolve, import and export identities (DIDs).
    #[command(subcommand)]
    Did(DidCommand),
    /// Pack and unpack DIDComm v2 messages (JSON on stdin, JSON on stdout).
    #[command(subcommand)]
    Message(MessageCommand),
    /// Route your identity through a mediator (creates a did:key identity if you have none;
    /// your identity stays the DID you share).
    Init {
        /// The mediator: base URL (http://host:port), invitation URL, or DID.
        #[arg(long, value_name = "URL")]
        mediator: String,
        /// The identity to route [default: your default identity].
        #[arg(long = "as", value_name = "DID")]
        identity: Option<String>,
    },
    /// Send a text message (Basic Message 2.0) to a DID.
    Send {
        /// Recipient DID.
        #[arg(long)]
        to: String,
        /// The text.
        #[arg(long)]
        text: String,
    },
    /// Read your inbox at the mediator (and acknowledge what was read).
    Inbox {
        /// Keep the connection open and print messages as they arrive (reconnects).
        #[arg(long)]
        follow: bool,
        /// One JSON object per message instead of text lines.
        #[arg(long)]
        json: bool,
    },
    /// Run a DIDComm v2 mediator.
    #[command(subcommand)]
    Mediator(MediatorCommand),
    /// Start an MPC session with these DIDs: sends them the signed session, prints an
    /// invitation URL and QR code, waits until all joined, then runs the program as pid 0.
    Invite(InviteArgs),
    /// Join an MPC session (invitation URL, short link, session id, or `next` for the next
    /// invitation to arrive), after checking that the local program matches; then run it.
    Join(JoinArgs),
    /// List the MPC invitations waiting for you (saved from your inbox).
    Sessions,
    /// Show the running (or last) MPC session: each peer's DID, pid, state, RTT and bytes.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Identity proofs a session may ask for before it admits you.
    #[command(subcommand)]
    Proof(ProofCommand),
    /// Verifiable Credentials: issue them from your own DID (did:key or did:web) to a
    /// party's DID, and check them.
    #[command(subcommand)]
    Credential(CredentialCommand),
    /// The whole thing on this machine: an embedded mediator, N parties, and a real MPyC
    /// program (secure statistics) run between them over didmpc.
    Demo(DemoArgs),
}

/// `didmpc mediator …`
#[derive(Subcommand, Debug)]
pub enum MediatorCommand {
    /// Serve until SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on [default: the config's, 127.0.0.1:7080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// TOML configuration file (see mediator/config.dev.toml).
        #[arg(long, value_name = "FILE", env = "DIDMPC_MEDIATOR_CONFIG")]
        config: Option<PathBuf>,
        /// SQLite database [default: the config's, or mediator.db in the home directory]; with
        /// --store, the keystore is still `<db>.keys`.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
        /// Keep queues, grants and routes in Redis (`redis://HOST:PORT/DB`), so several
        /// instances with the same identity serve one mediator behind a load balancer.
        #[arg(long, value_name = "URL")]
        store: Option<String>,
        /// Public base URL parties use (repeatable); overrides the config's.
        #[arg(long = "public-url", value_name = "URL")]
        public_urls: Vec<String>,
        /// UDP address answering reflexive-address probes for direct paths (repeatable; give
        /// two ports); overrides the config's `udp.listen`.
        #[arg(long = "udp", value_name = "ADDR")]
        udp: Vec<std::net::SocketAddr>,
    },
}
