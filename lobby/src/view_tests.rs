//! The view's transitions and controls.
use super::*;
use gateway::descriptor::{MpcOptions, Program, VERSION};
use gateway::events::Event;
use gateway::invite::Progress;
use gateway::wire::Member;

const A: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
const B: &str = "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG";
const WALLET: &str = "did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a";

fn descriptor() -> Descriptor {
    Descriptor {
        v: VERSION,
        id: "sess".into(),
        host: A.into(),
        host_route: None,
        roster: vec![A.into(), B.into(), WALLET.into()],
        program: Program { name: "p.py".into(), sha256: "0".repeat(64), args: vec!["-x".into()], mpyc: "0.11".into() },
        mpyc: MpcOptions { threshold: Some(1), ssl: false },
        proofs: serde_json::Value::Null,
        created: 100,
        expires: 1000,
        peer_deadline_secs: 30,
    }
}

#[test]
fn an_invitee_may_join_only_after_signing_in_when_asked() {
    let mut v = View::new(Role::Join);
    v.settle();
    assert_eq!(v.can, Can::default(), "nothing to do while loading");
    let ask = ProofAsk { text: Some("Sign-In with Ethereum".into()), siwe: true, ..ProofAsk::default() };
    v.session(&descriptor(), Some(1), ask);
    v.settle();
    assert!(v.can.sign && v.can.decline && !v.can.join);
    assert_eq!(v.roster[1].short, "did:key:z6Mk…jVJG");
    assert!(v.roster[1].you && v.roster[0].host);
    v.signed_in("account did:pkh:eip155:1:0xab");
    v.settle();
    assert!(v.can.join);
    v.joining();
    v.settle();
    assert_eq!(v.can, Can::default(), "decided");
}

#[test]
fn a_credential_the_page_cannot_present_blocks_the_join_button() {
    let mut v = View::new(Role::Join);
    let ask = ProofAsk { text: Some("a VP".into()), note: Some("use --credential".into()), ..ProofAsk::default() };
    v.session(&descriptor(), Some(1), ask);
    v.settle();
    assert!(!v.can.join && !v.can.sign && v.can.decline);
}

#[test]
fn the_host_sees_each_place_and_may_start_once_everyone_joined() {
    let mut v = View::new(Role::Host);
    v.session(&descriptor(), Some(0), ProofAsk::default());
    v.settle();
    assert!(v.can.cancel && !v.can.start);
    v.host_progress(&Progress::Reached { did: B.into(), via: "http://m".into() });
    v.host_progress(&Progress::Unreachable { did: WALLET.into(), why: "a wallet".into() });
    assert_eq!((v.roster[1].state, v.roster[2].state), (RowState::Reached, RowState::Unreachable));
    let refused =
        Progress::Refused { did: B.into(), pid: Some(2), code: "e.p.req.proof.wrong-account".into(), why: "no".into() };
    v.host_progress(&refused);
    assert_eq!(v.roster[2].state, RowState::Refused);
    assert!(v.roster[2].detail.as_deref().unwrap().contains("wrong-account"));
    v.host_progress(&Progress::Joined { did: B.into(), pid: 1, identity: None });
    v.host_progress(&Progress::Joined { did: WALLET.into(), pid: 2, identity: Some("account x".into()) });
    v.host_progress(&Progress::Ready);
    v.settle();
    assert!(v.can.start && v.can.cancel);
    assert_eq!(v.roster[2].identity.as_deref(), Some("account x"));
    v.event(&Event::Final {
        members: [A, B, WALLET]
            .iter()
            .map(|d| Member {
                did: d.to_string(),
                agent: if d.starts_with("did:pkh") { B.into() } else { d.to_string() },
                route: None,
                identity: None,
            })
            .collect(),
    });
    v.settle();
    assert!(!v.can.start && !v.can.cancel, "started");
    assert_eq!(v.roster[2].agent.as_deref(), Some("did:key:z6Mk…jVJG"));
    v.event(&Event::SessionsUp { ms: 12 });
    assert_eq!(v.roster[1].state, RowState::Up);
    v.finish(Err("lost pid 1".into()));
    assert!(v.is_over() && v.phase == Phase::Failed);
}

#[test]
fn lines_are_bounded() {
    let mut v = View::new(Role::Join);
    for i in 0..(MAX_LINES + 10) {
        v.output(&i.to_string());
    }
    assert_eq!(v.output.len(), MAX_LINES);
    assert_eq!(v.output[0], "10");
}
