//! Admission by identity proof, end to end with the real binary and real MPyC: the host
//! invites with `--require-account`; an invitee presenting Sign-In with Ethereum from
//! another account is refused with a problem report that says why (wrong account), is
//! never sent `start` (so it never gets a session, a port, or runs MPyC); the same
//! invitee with the right key is admitted, shown with its verified account, and runs.

#[path = "support/mpyc.rs"]
mod mpyc;
#[path = "support/parties.rs"]
mod parties;
#[path = "support/mediator.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use parties::{didmpc, invite, lab, party, Running};

/// The id of the first invitation `didmpc sessions` lists (it is kept, so it can be joined twice).
fn wait_for_invitation(home: &Path, dir: &Path) -> String {
    for _ in 0..100 {
        let out = didmpc(home, dir).arg("sessions").output().unwrap();
        if let Some(first) = String::from_utf8_lossy(&out.stdout).split_whitespace().next() {
            return first.to_owned();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the invitation never arrived");
}

fn new_key(home: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = support::temp_path(name);
    let out = didmpc(home, &std::env::temp_dir()).args(["proof", "new-key"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "new-key: {}", String::from_utf8_lossy(&out.stderr));
    (path, String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

#[test]
fn a_party_with_the_wrong_account_is_refused_and_never_runs_and_the_right_one_runs() {
    let lab = lab();
    let (h0, _) = party(&lab.url);
    let (h1, d1) = party(&lab.url);
    let dir0 = mpyc::workdir("host", "secure_stats.py");
    let dir1 = mpyc::workdir("p1", "secure_stats.py");
    let (good, good_account) = new_key(&h1, "good.key");
    let (bad, bad_account) = new_key(&h1, "bad.key");
    assert!(good_account.starts_with("did:pkh:eip155:1:0x"), "{good_account}");
    let args = ["--seed", "3"];
    let require = format!("{d1}={good_account}");
    let host = invite(
        &h0,
        &dir0,
        std::slice::from_ref(&d1),
        "secure_stats.py",
        &["--join-timeout", "120", "--require-account", &require],
        &args,
    );

    // The invitation arrives and is kept (so it can be joined by id, twice).
    let id = wait_for_invitation(&h1, &dir1);

    // Without any proof the joiner says what the session asks for and does not join.
    let out = didmpc(&h1, &dir1)
        .args(["join", &id, "--yes", "--min-threshold", "0", "--python"])
        .arg(mpyc::python())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("asks for Sign-In with Ethereum from"), "{err}");

    // The wrong account: refused by the host, with the reason.
    let mut c = didmpc(&h1, &dir1);
    c.args(["join", &id, "--yes", "--min-threshold", "0", "--siwe-key"]).arg(&bad).arg("--python").arg(mpyc::python());
    let (ok, out, err) = Running::spawn(c, "wrong account").wait(Duration::from_secs(60));
    assert!(!ok, "a wrong account must not join:\n{out}\n{err}");
    assert!(err.contains("e.p.req.proof.wrong-account"), "the refusal says why: {err}");
    assert!(err.contains(&bad_account[bad_account.rfind(':').unwrap() + 1..]), "and names the account: {err}");
    assert!(mpyc::result_of(&out).is_none(), "MPyC never ran: {out}");
    assert!(!h1.join(gateway::status::STATUS_FILE).exists(), "no session was ever set up for the refused party");

    // The right account: admitted and runs.
    let mut c = didmpc(&h1, &dir1);
    c.args(["join", &id, "--yes", "--min-threshold", "0", "--siwe-key"]).arg(&good).arg("--python").arg(mpyc::python());
    let (ok, out1, err1) = Running::spawn(c, "right account").wait(Duration::from_secs(180));
    assert!(ok, "the right account runs:\n{out1}\n{err1}");
    let (ok, out0, err0) = host.wait(Duration::from_secs(60));
    assert!(ok, "host failed:\n{out0}\n{err0}");
    assert!(err0.contains("REFUSED") && err0.contains("wrong-account"), "the host shows the refusal: {err0}");
    assert!(err0.contains(&format!("verified account {good_account}")), "and the verified identity: {err0}");
    let (r0, r1) = (mpyc::result_of(&out0).expect("host RESULT"), mpyc::result_of(&out1).expect("party RESULT"));
    assert_eq!(r0, r1);
    // `status` on both sides names the verified account of pid 1.
    for (home, dir, line) in [(&h0, &dir0, "pid 1 verified"), (&h1, &dir1, "you (pid 1) verified")] {
        let out = didmpc(home, dir).arg("status").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("{line}: account {good_account}")), "{text}");
    }
}

/// Issues a credential of `ty` to `subject` from a fresh did:key issuer in its own home;
/// returns (issuer DID, credential file).
fn issue_credential(subject: &str, ty: &str, name: &str) -> (String, std::path::PathBuf) {
    let home = support::temp_path(&format!("{name}-issuer"));
    let tmp = std::env::temp_dir();
    let out = didmpc(&home, &tmp).args(["did", "new", "--method", "key"]).output().unwrap();
    assert!(out.status.success(), "did new: {}", String::from_utf8_lossy(&out.stderr));
    let issuer = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let file = support::temp_path(&format!("{name}.jwt"));
    let out = didmpc(&home, &tmp)
        .args(["credential", "issue", subject, "--type", ty, "--claim", "employeeOf=ACME", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "credential issue: {}", String::from_utf8_lossy(&out.stderr));
    (issuer, file)
}

#[test]
fn a_party_with_an_untrusted_credential_is_refused_and_never_runs_and_a_trusted_one_runs() {
    let lab = lab();
    let (h0, _) = party(&lab.url);
    let (h1, d1) = party(&lab.url);
    let dir0 = mpyc::workdir("vp-host", "secure_stats.py");
    let dir1 = mpyc::workdir("vp-p1", "secure_stats.py");
    let (acme, good) = issue_credential(&d1, "EmployeeCredential", "acme");
    let (_mallory, untrusted) = issue_credential(&d1, "EmployeeCredential", "mallory");
    let args = ["--seed", "5"];
    let host = invite(
        &h0,
        &dir0,
        std::slice::from_ref(&d1),
        "secure_stats.py",
        &["--join-timeout", "120", "--trust-issuer", &acme, "--credential-type", "EmployeeCredential"],
        &args,
    );

    let id = wait_for_invitation(&h1, &dir1);

    // A credential from an issuer the host does not trust: refused, with the reason.
    let mut c = didmpc(&h1, &dir1);
    c.args(["join", &id, "--yes", "--min-threshold", "0", "--credential"])
        .arg(&untrusted)
        .arg("--python")
        .arg(mpyc::python());
    let (ok, out, err) = Running::spawn(c, "untrusted issuer").wait(Duration::from_secs(90));
    assert!(!ok, "an untrusted credential must not join:\n{out}\n{err}");
    assert!(err.contains("e.p.req.proof.untrusted-issuer"), "the refusal says why: {err}");
    assert!(mpyc::result_of(&out).is_none(), "MPyC never ran: {out}");
    assert!(!h1.join(gateway::status::STATUS_FILE).exists(), "no session was ever set up for the refused party");

    // The trusted issuer's credential, kept first with `didmpc proof vp`: admitted, runs.
    let out = didmpc(&h1, &dir1).args(["proof", "vp", &id, "--credential"]).arg(&good).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("verified: EmployeeCredential from"), "proof vp: {err}");
    let mut c = didmpc(&h1, &dir1);
    c.args(["join", &id, "--yes", "--min-threshold", "0", "--python"]).arg(mpyc::python());
    let (ok, out1, err1) = Running::spawn(c, "trusted credential").wait(Duration::from_secs(180));
    assert!(ok, "the trusted credential runs:\n{out1}\n{err1}");
    let (ok, out0, err0) = host.wait(Duration::from_secs(60));
    assert!(ok, "host failed:\n{out0}\n{err0}");
    assert!(err0.contains("untrusted-issuer"), "the host shows the refusal: {err0}");
    let shown = format!("verified EmployeeCredential from {acme}");
    assert!(err0.contains(&shown), "and the verified identity: {err0}");
    assert_eq!(mpyc::result_of(&out0).expect("host RESULT"), mpyc::result_of(&out1).expect("party RESULT"));
    let out = didmpc(&h0, &dir0).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("pid 1 verified: EmployeeCredential from {acme}")), "{text}");
}
