//! `didmpc proof …` and `didmpc credential …`: identity proofs a session may ask for, and
//! Verifiable Credentials.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::PageArgs;

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
