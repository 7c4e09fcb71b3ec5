//! The `didmpc` binary: identities, JWK import/export, message pack/unpack, and its
//! error messages and exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn didmpc(home: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_didmpc"))
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap().trim().to_owned()
}

fn err(o: &Output) -> String {
    assert!(!o.status.success(), "should have failed: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8(o.stderr.clone()).unwrap()
}

fn tmp() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("didmpc-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn identities_export_import_and_messages() {
    let (a, b) = (tmp(), tmp());
    let alice = ok(&didmpc(&a, &["did", "new"], None));
    assert!(alice.starts_with("did:key:z6Mk"));
    let bob =
        ok(&didmpc(&b, &["did", "new", "--method", "peer", "--service-endpoint", "http://127.0.0.1:9/didcomm"], None));
    assert!(bob.starts_with("did:peer:2."));
    // key files are private
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let f = std::fs::read_dir(a.join("identities")).unwrap().next().unwrap().unwrap().path();
        assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let shown: serde_json::Value = serde_json::from_str(&ok(&didmpc(&b, &["did", "show"], None))).unwrap();
    assert_eq!(shown["document"]["service"][0]["serviceEndpoint"]["uri"], "http://127.0.0.1:9/didcomm");
    let resolved: serde_json::Value = serde_json::from_str(&ok(&didmpc(&a, &["did", "resolve", &bob], None))).unwrap();
    assert_eq!(resolved["id"], bob);

    // export, then import into a fresh home
    let jwks: Vec<serde_json::Value> = serde_json::from_str(&ok(&didmpc(&a, &["did", "export"], None))).unwrap();
    let c = tmp();
    let mut args = vec!["did".to_owned(), "import".to_owned(), alice.clone()];
    for (i, j) in jwks.iter().enumerate() {
        let p = c.join(format!("k{i}.jwk"));
        std::fs::write(&p, j.to_string()).unwrap();
        args.extend(["--jwk".to_owned(), p.display().to_string()]);
    }
    let home2 = tmp();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(ok(&didmpc(&home2, &argv, None)), alice);
    // a key that is not in the DID's document is refused
    let mallory = tmp();
    ok(&didmpc(&mallory, &["did", "new"], None));
    let mk: Vec<serde_json::Value> = serde_json::from_str(&ok(&didmpc(&mallory, &["did", "export"], None))).unwrap();
    let p = c.join("mallory.jwk");
    let mut wrong = mk[0].clone();
    wrong["kid"] = jwks[0]["kid"].clone();
    std::fs::write(&p, wrong.to_string()).unwrap();
    let e = err(&didmpc(&tmp(), &["did", "import", &alice, "--jwk", p.to_str().unwrap()], None));
    assert!(e.contains("do not match") || e.contains("does not match"), "{e}");

    // pack (authcrypt + signed + sender protected) as the imported alice, unpack as bob
    let plain = r#"{"id":"1","type":"https://didcomm.org/basicmessage/2.0/message","body":{"content":"hi"}}"#;
    let packed = ok(&didmpc(
        &home2,
        &["message", "pack", "--to", &bob, "--from", &alice, "--sign", "--protect-sender"],
        Some(plain),
    ));
    let out: serde_json::Value = serde_json::from_str(&ok(&didmpc(&b, &["message", "unpack"], Some(&packed)))).unwrap();
    assert_eq!(out["message"]["body"]["content"], "hi");
    assert_eq!(out["metadata"]["sender"], alice);
    assert_eq!(out["metadata"]["sender_protected"], true);
    // anoncrypt with each cipher
    for enc in ["A256CBC-HS512", "A256GCM", "XC20P"] {
        let packed = ok(&didmpc(&a, &["message", "pack", "--to", &bob, "--anon-enc", enc], Some(plain)));
        let out: serde_json::Value =
            serde_json::from_str(&ok(&didmpc(&b, &["message", "unpack"], Some(&packed)))).unwrap();
        assert!(out["metadata"]["enc_alg_anon"].as_str().unwrap().ends_with(enc));
    }
    // alice cannot read what was sent to bob
    let e = err(&didmpc(&a, &["message", "unpack"], Some(&packed)));
    assert!(e.contains("not addressed to any of our keys"), "{e}");
}

#[test]
fn clear_errors_and_exit_codes() {
    let h = tmp();
    let e = err(&didmpc(&h, &["did", "show"], None));
    assert!(e.contains("didmpc did new"), "{e}");
    let e = err(&didmpc(&h, &["did", "new", "--method", "key", "--service-endpoint", "http://x"], None));
    assert!(e.contains("use --method peer"), "{e}");
    let e = err(&didmpc(&h, &["did", "resolve", "not-a-did"], None));
    assert!(e.contains("invalid DID"), "{e}");
    ok(&didmpc(&h, &["did", "new"], None));
    let e = err(&didmpc(&h, &["message", "unpack"], Some("{\"protected\": 1, \"ciphertext\": 2")));
    assert!(e.contains("not JSON"), "{e}");
    let e = err(&didmpc(
        &h,
        &["message", "pack", "--to", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"],
        Some("[]"),
    ));
    assert!(e.contains("not a DIDComm plaintext message"), "{e}");
    let e = err(&didmpc(
        &h,
        &["message", "pack", "--to", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"],
        Some(""),
    ));
    assert!(e.contains("expected JSON on stdin"), "{e}");
    let usage = didmpc(&h, &["message", "pack"], None);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
    let e = err(&didmpc(
        &h,
        &["send", "--to", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK", "--text", "x"],
        None,
    ));
    assert!(e.contains("didmpc init --mediator"), "{e}");
}
