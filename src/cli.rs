//! Command-line definitions (clap). Only parsing lives here; `cmd/` runs the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// DID method for new identities.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// did:key (Ed25519 with derived X25519); cannot carry a service endpoint.
    Key,
    /// did:peer:2 (Ed25519 + X25519, optional DIDComm service).
    Peer,
}

/// `didmpc did …`
#[derive(Subcommand, Debug)]
pub enum DidCommand {
    /// Create a new identity and store its keys (the first one becomes the default).
    New {
        /// DID method.
        #[arg(long, value_enum, default_value = "key")]
        method: Method,
        /// DIDComm service endpoint (http(s)://, ws(s):// or a mediator DID); did:peer only.
        #[arg(long, value_name = "URI")]
        service_endpoint: Option<String>,
        /// Routing key (DID or DID URL) for the service; repeatable, outermost last.
        #[arg(long = "routing-key", value_name = "DID")]
        routing_keys: Vec<String>,
        /// Make this the default identity.
        #[arg(long)]
        default: bool,
    },
    /// Show an identity's DID and DID document.
    Show(Select),
    /// List stored identities (short forms; `*` marks the default).
    List {
        /// Print whole DIDs.
        #[arg(long)]
        full: bool,
    },
    /// Resolve any DID and print its document.
    Resolve {
        /// The DID to resolve.
        did: String,
    },
    /// Import private keys (JWK files) for a DID; refused unless they match its document.
    Import {
        /// The DID the keys belong to.
        did: String,
        /// A private JWK file (RFC 8037 OKP or EC); repeat for several keys.
        #[arg(long = "jwk", value_name = "FILE", required = true)]
        jwks: Vec<PathBuf>,
        /// A DID document file, for DIDs that cannot be resolved from here.
        #[arg(long, value_name = "FILE")]
        document: Option<PathBuf>,
        /// Make this the default identity.
        #[arg(long)]
        default: bool,
    },
    /// Print an identity's private keys as JWKs (keep the output secret).
    Export(Select),
}

/// Chooses a stored identity.
#[derive(Args, Debug, Clone)]
pub struct Select {
    /// The identity's DID [default: the default identity].
    #[arg(long)]
    pub did: Option<String>,
}

/// Content encryption for anoncrypt.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonEnc {
    /// AES-256-CBC + HMAC-SHA-512 (accepted everywhere).
    #[value(name = "A256CBC-HS512")]
    A256CbcHs512,
    /// AES-256-GCM.
    #[value(name = "A256GCM")]
    A256Gcm,
    /// XChaCha20-Poly1305.
    #[value(name = "XC20P")]
    Xc20p,
}

/// `didmpc message …`
#[derive(Subcommand, Debug)]
pub enum MessageCommand {
    /// Pack a plaintext message read from stdin; prints the envelope.
    Pack {
        /// Recipient DID (or one key id of it).
        #[arg(long)]
        to: String,
        /// Sender DID (a stored identity): authcrypt. Without it: anoncrypt.
        #[arg(long)]
        from: Option<String>,
        /// Sign first with the sender (or the default identity when no --from).
        #[arg(long)]
        sign: bool,
        /// Only sign (JWS), do not encrypt.
        #[arg(long, conflicts_with_all = ["from", "anon_enc", "forward", "protect_sender"])]
        sign_only: bool,
        /// Content cipher for anoncrypt.
        #[arg(long, value_enum, default_value = "A256CBC-HS512")]
        anon_enc: AnonEnc,
        /// Hide the sender by wrapping authcrypt in anoncrypt.
        #[arg(long, requires = "from")]
        protect_sender: bool,
        /// Wrap in Routing 2.0 forward messages for the recipient's routing keys.
        #[arg(long)]
        forward: bool,
    },
    /// Unpack an envelope read from stdin with the stored identities' keys.
    Unpack,
}

/// `didmpc proof …`
#[derive(Subcommand, Debug)]
pub enum ProofCommand {
    /// Sign-In with Ethereum for a session: prints the exact EIP-4361 message for a wallet
    /// to sign (`--account`), then takes its signature back (`--signature`); or signs it
    /// with a local key file (`--key`). The proof is kept for `didmpc join`.
    Siwe(ProofSiweArgs),
    /// A Verifiable Presentation for a session: presents your credentials (VC-JWT files)
    /// over the session's challenge and domain, signed by your DID. Kept for `didmpc join`.
    Vp(ProofVpArgs),
    /// Create a local secp256k1 account key file (mode 0600) for scripts; prints its address.
    NewKey {
        /// The new key file (must not exist).
        out: PathBuf,
    },
}

/// `didmpc proof vp`.
#[derive(Args, Debug)]
pub struct ProofVpArgs {
    /// The session: invitation URL, session id (see `didmpc sessions`), or `next`.
    pub invitation: String,
    /// A credential issued to your DID (VC-JWT file). Repeatable.
    #[arg(long = "credential", value_name = "FILE", required = true)]
    pub credentials: Vec<PathBuf>,
    /// How long to wait for `next`, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub wait: u64,
}

/// `didmpc credential …`
#[derive(Subcommand, Debug)]
pub enum CredentialCommand {
    /// Issue a Verifiable Credential (VC-JWT) to a DID, signed by the assertion key of one
    /// of your identities; prints it (or writes it with --out, mode 0600).
    Issue(CredentialIssueArgs),
    /// Verify a credential (VC-JWT file, `-` for stdin): issuer signature and dates; prints
    /// what it says as JSON.
    Verify {
        /// The credential file.
        file: PathBuf,
    },
}

/// `didmpc credential issue`.
#[derive(Args, Debug)]
pub struct CredentialIssueArgs {
    /// The subject: the DID the credential is issued to (the party's session DID).
    pub subject: String,
    /// Credential type, e.g. EmployeeCredential (repeatable).
    #[arg(long = "type", value_name = "TYPE", required = true)]
    pub types: Vec<String>,
    /// A property of the subject, NAME=VALUE (VALUE is JSON if it parses, else text). Repeatable.
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    pub claims: Vec<String>,
    /// Days until it expires (0: never).
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub valid_days: u64,
    /// The issuing identity (its DID) [default: the default identity]. It needs an
    /// assertionMethod key: did:key, or a did:web imported with `didmpc did import`.
    #[arg(long, value_name = "DID")]
    pub issuer: Option<String>,
    /// Write it to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `didmpc proof siwe`.
#[derive(Args, Debug)]
pub struct ProofSiweArgs {
    /// The session: invitation URL, session id (see `didmpc sessions`), or `next`.
    pub invitation: String,
    /// The wallet's account (0x address, CAIP-10 or did:pkh) the message is for.
    #[arg(long, value_name = "ACCOUNT", conflicts_with_all = ["key", "signature"])]
    pub account: Option<String>,
    /// The wallet's `personal_sign` signature of the printed message (0x + 130 hex).
    #[arg(long, value_name = "0x…", conflicts_with = "key")]
    pub signature: Option<String>,
    /// Sign with this local key file instead of a wallet.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Sign in the browser with your wallet (the lobby page; no --account, --signature or --key).
    #[command(flatten)]
    pub page: PageArgs,
    /// EIP-155 chain id (when the account is a bare address or a key file).
    #[arg(long, value_name = "ID", default_value_t = 1)]
    pub chain_id: u64,
    /// How long to wait for `next`, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub wait: u64,
}
