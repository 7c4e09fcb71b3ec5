//! The MPC session commands' arguments: `didmpc invite`, `join` and `demo`, and the groups
//! they share (where MPyC runs, the lobby page).

use std::path::PathBuf;

use clap::Args;

/// How MPyC runs here.
#[derive(Args, Debug, Clone)]
pub struct MpcLocal {
    /// Python interpreter with MPyC [default: $DIDMPC_MPYC_PYTHON, else python3 on PATH].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Time allowed for the pairwise handshakes, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub handshake_timeout: u64,
    /// Keep this party's IP addresses from its peers: every byte goes through the
    /// mediator's relay (no UDP socket, no direct path).
    #[arg(long)]
    pub relay_only: bool,
}

/// `--browser`: the local lobby page.
#[derive(Args, Debug, Clone)]
pub struct PageArgs {
    /// Show the session in your browser: a page served by this process on 127.0.0.1 only
    /// (random port, secret token in its URL), with the wallet's Sign-In with Ethereum,
    /// the Join/Decline (or Start/Cancel) controls and live progress.
    #[arg(long)]
    pub browser: bool,
    /// With --browser: print the page's URL without opening a browser.
    #[arg(long, requires = "browser")]
    pub no_open: bool,
}

/// `didmpc invite`.
#[derive(Args, Debug)]
pub struct InviteArgs {
    /// The invitees' DIDs: they become pids 1, 2, … in this order (you are pid 0).
    #[arg(required = true, value_name = "DID")]
    pub dids: Vec<String>,
    /// The MPyC program every party runs.
    #[arg(long, value_name = "FILE")]
    pub program: PathBuf,
    /// MPyC threshold (-T) [default: MPyC's, (parties-1)/2].
    #[arg(long, value_name = "T")]
    pub threshold: Option<u32>,
    /// Pass --ssl to MPyC (every party needs MPyC's .config/ certificates in its directory).
    #[arg(long)]
    pub ssl: bool,
    /// How long invitees may take to join, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub join_timeout: u64,
    /// A peer silent this long (seconds) ends the run with an error on every side.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub peer_deadline: u64,
    /// Admit this Ethereum account (did:pkh, CAIP-10 or 0x address) by Sign-In with
    /// Ethereum; `INVITEE_DID=ACCOUNT` for one invitee only. Repeatable.
    #[arg(long = "require-account", value_name = "[DID=]ACCOUNT")]
    pub require_accounts: Vec<String>,
    /// Ask every invitee for Sign-In with Ethereum from any account (shown, not checked).
    #[arg(long)]
    pub any_account: bool,
    /// Trust credentials from this issuer DID (`INVITEE_DID=ISSUER` for one invitee);
    /// with --credential-type, only those types. Repeatable.
    #[arg(long = "trust-issuer", value_name = "[DID=]ISSUER")]
    pub trust_issuers: Vec<String>,
    /// Credential type accepted from the trusted issuers (repeatable; none: any type).
    #[arg(long = "credential-type", value_name = "TYPE", requires = "trust_issuers")]
    pub credential_types: Vec<String>,
    /// Longest validity of an identity proof, in seconds.
    #[arg(long, value_name = "SECS")]
    pub proof_validity: Option<u64>,
    /// Progress as JSON event lines on stdout (the program's output as `output` events).
    #[arg(long)]
    pub json: bool,
    /// The lobby page.
    #[command(flatten)]
    pub page: PageArgs,
    /// Where MPyC runs.
    #[command(flatten)]
    pub local: MpcLocal,
    /// Arguments for the program (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// `didmpc join`.
#[derive(Args, Debug)]
pub struct JoinArgs {
    /// Invitation URL (`?_oob=` or `?_oobid=`), a session id from `didmpc sessions`, or
    /// `next` to wait for the next invitation.
    pub invitation: String,
    /// The program file [default: the invitation's file name in the current directory].
    #[arg(long, value_name = "FILE")]
    pub program: Option<PathBuf>,
    /// How long `next` waits for an invitation, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub wait: u64,
    /// If the session asks for Sign-In with Ethereum, sign it with this local key file
    /// (else the proof made with `didmpc proof siwe` is used).
    #[arg(long, value_name = "FILE")]
    pub siwe_key: Option<PathBuf>,
    /// EIP-155 chain id for --siwe-key.
    #[arg(long, value_name = "ID", default_value_t = 1)]
    pub chain_id: u64,
    /// If the session asks for a Verifiable Presentation, present this credential (a
    /// VC-JWT file issued to your DID). Repeatable.
    #[arg(long = "credential", value_name = "FILE")]
    pub credentials: Vec<PathBuf>,
    /// Join without asking for confirmation (for scripts). Your limits below still apply.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// With `next`: take an invitation from this host DID (else only from hosts you joined
    /// before, or ones you accept when asked on a terminal).
    #[arg(long, value_name = "DID")]
    pub from: Option<String>,
    /// Refuse sessions with more parties than this.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_parties: usize,
    /// Refuse sessions whose MPyC threshold is below this (threshold 0 means no input privacy).
    #[arg(long, value_name = "T", default_value_t = 1)]
    pub min_threshold: u32,
    /// Progress as JSON event lines on stdout (the program's output as `output` events).
    #[arg(long)]
    pub json: bool,
    /// The lobby page.
    #[command(flatten)]
    pub page: PageArgs,
    /// Where MPyC runs.
    #[command(flatten)]
    pub local: MpcLocal,
}

/// `didmpc demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Number of parties (2..=8).
    #[arg(long, default_value_t = 3)]
    pub parties: usize,
    /// Python interpreter with MPyC [default: a venv with the pinned MPyC, created on first use].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Run the program's computation this many times (MPyC runtime restarted each time).
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
}
