//! The cores driven without IO: a decline, a stranger's join, a did:pkh place, an
//! off-roster init, a duplicate init, a wrong final roster, and a lost peer.

use did_core::didcomm::vocab::ProblemReport;
use did_core::didcomm::Message;
use serde_json::Value;
use session::CloseReason;

use super::host::{HostCore, HostIn, HostOut, Progress};
use super::joiner::{JoinCore, JoinIn, JoinOut};
use super::mesh::{MeshCore, MeshIn, MeshOut};
use super::supervisor::{SupIn, SupOut, Supervisor, CLOSE_DONE};
use super::Refusal;
use crate::descriptor::{Descriptor, MpcOptions, Program, VERSION};
use crate::error::Error;
use crate::wire::{Accept, Decline, Init, Join, Member, RelayOffer, Start};

const A: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
const B: &str = "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG";
const C: &str = "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf";
const WALLET: &str = "did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a";
const STRANGER: &str = "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2";

fn descriptor(roster: &[&str]) -> Descriptor {
    Descriptor {
        v: VERSION,
        id: "sess".into(),
        host: roster[0].into(),
        host_route: None,
        roster: roster.iter().map(|s| s.to_string()).collect(),
        program: Program { name: "p.py".into(), sha256: "0".repeat(64), args: vec![], mpyc: "0.11".into() },
        mpyc: MpcOptions::default(),
        proofs: Value::Null,
        created: 100,
        expires: 1000,
        peer_deadline_secs: 30,
    }
}

fn member(did: &str) -> Member {
    Member { did: did.into(), agent: did.into(), route: None, identity: None }
}

fn join(member: Option<&str>) -> Message {
    Message::typed(&Join { session: "sess".into(), member: member.map(str::to_owned), route: None, proof: None })
}

fn host() -> HostCore {
    HostCore::new(descriptor(&[A, B, C]), member(A))
}

#[test]
fn everyone_joins_then_the_final_roster_goes_to_everyone() {
    let mut h = host();
    let mut started = None;
    for who in [B, C] {
        let m = join(None);
        let out = h.handle(HostIn::Message { msg: &m, sender: who });
        let [HostOut::Verify { pid, sender, join, join_id }] = &out[..] else { panic!("{out:?}") };
        let verdict = HostIn::Verdict {
            pid: *pid,
            sender: sender.clone(),
            join: join.clone(),
            join_id: join_id.clone(),
            result: Ok(None),
        };
        for o in h.handle(verdict) {
            if let HostOut::Started(members) = o {
                started = Some(members);
            }
        }
    }
    let members = started.expect("started");
    assert_eq!(members, vec![member(A), member(B), member(C)]);
}

/// Feeds B's and C's joins (no proof asked) and returns the outputs of the last verdict.
fn everyone_joins(h: &mut HostCore) -> Vec<HostOut> {
    let mut last = Vec::new();
    for who in [B, C] {
        let out = h.handle(HostIn::Message { msg: &join(None), sender: who });
        let [HostOut::Verify { pid, sender, join, join_id }] = &out[..] else { panic!("{out:?}") };
        let verdict = HostIn::Verdict {
            pid: *pid,
            sender: sender.clone(),
            join: join.clone(),
            join_id: join_id.clone(),
            result: Ok(None),
        };
        last = h.handle(verdict);
    }
    last
}

#[test]
fn with_a_manual_start_the_final_roster_waits_for_the_hosts_go() {
    let mut h = host().manual_start();
    assert!(h.handle(HostIn::Start).is_empty(), "no go before everyone joined");
    let out = everyone_joins(&mut h);
    assert!(matches!(&out[..], [HostOut::Progress(Progress::Joined { .. }), HostOut::Progress(Progress::Ready)]));
    let out = h.handle(HostIn::Start);
    let sent: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            HostOut::Send(s) if s.msg.parse::<Start>().is_ok() => Some(s.to.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![B, C]);
    assert!(matches!(out.last(), Some(HostOut::Started(m)) if m.len() == 3));
    assert!(h.handle(HostIn::Start).is_empty(), "started once");
}

#[test]
fn a_cancel_aborts_everyone_and_a_go_that_never_comes_ends_at_expiry() {
    let mut h = host().manual_start();
    let out = h.handle(HostIn::Message { msg: &join(None), sender: B });
    assert!(matches!(&out[..], [HostOut::Verify { .. }]));
    let out = h.handle(HostIn::Cancel("changed my mind".into()));
    let aborted: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            HostOut::Send(s) if s.msg.parse::<crate::wire::Abort>().is_ok() => Some(s.to.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(aborted, vec![B, C], "every invitee is told");
    match out.last() {
        Some(HostOut::Failed(Error::Refused { code, comment, .. })) => {
            assert_eq!(code, "cancelled");
            assert!(comment.contains("changed my mind"), "{comment}");
        }
        other => panic!("{other:?}"),
    }
    let mut h = host().manual_start();
    everyone_joins(&mut h);
    let out = h.handle(HostIn::Tick(1000));
    assert!(matches!(out.last(), Some(HostOut::Failed(Error::Timeout(w))) if w.contains("did not start")), "{out:?}");
}

#[test]
fn a_stranger_is_refused_in_the_background_and_a_decline_aborts_everyone() {
    let mut h = host();
    let m = join(None);
    let out = h.handle(HostIn::Message { msg: &m, sender: STRANGER });
    match &out[..] {
        [HostOut::Send(s), HostOut::Progress(Progress::Refused { code, pid: None, .. })] => {
            assert!(s.background, "a stranger never delays the session");
            assert_eq!(code, "e.p.req.not-invited");
            assert_eq!(s.msg.parse::<ProblemReport>().unwrap().code, "e.p.req.not-invited");
            assert_eq!(s.msg.pthid.as_deref(), Some(m.id.as_str()));
        }
        other => panic!("{other:?}"),
    }
    // Someone may not join as another roster member.
    let out = h.handle(HostIn::Message { msg: &join(Some(C)), sender: B });
    assert!(matches!(&out[..], [HostOut::Send(_), HostOut::Progress(Progress::Refused { pid: Some(2), .. })]));
    // A decline from a stranger is ignored; from a member it ends the session for all.
    let decline = Message::typed(&Decline { session: "sess".into(), reason: "no".into() });
    assert!(h.handle(HostIn::Message { msg: &decline, sender: STRANGER }).is_empty());
    let out = h.handle(HostIn::Message { msg: &decline, sender: C });
    let aborted: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            HostOut::Send(s) if !s.background => Some(s.to.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(aborted, vec![B, C]);
    assert!(matches!(out.last(), Some(HostOut::Failed(Error::Refused { code, .. })) if code == "declined"));
    assert!(h.handle(HostIn::Tick(5000)).is_empty(), "over is over");
}

#[test]
fn a_failed_proof_is_refused_and_the_place_stays_open() {
    let mut h = host();
    let m = join(None);
    let out = h.handle(HostIn::Message { msg: &m, sender: B });
    let [HostOut::Verify { join, join_id, .. }] = &out[..] else { panic!() };
    // While the check runs, a second join for the same place waits for it.
    assert!(h.handle(HostIn::Message { msg: &join_msg_again(), sender: B }).is_empty());
    let refusal = Refusal { code: "e.p.req.proof.bad-signature".into(), why: "forged".into() };
    let verdict = HostIn::Verdict {
        pid: 1,
        sender: B.into(),
        join: join.clone(),
        join_id: join_id.clone(),
        result: Err(refusal),
    };
    let out = h.handle(verdict);
    assert!(matches!(&out[0], HostOut::Send(s) if s.background && s.msg.pthid.as_deref() == Some(join_id.as_str())));
    assert_eq!(h.missing(), vec![B.to_string(), C.to_string()]);
    let out = h.handle(HostIn::Message { msg: &join_msg_again(), sender: B });
    assert!(matches!(&out[..], [HostOut::Verify { pid: 1, .. }]), "a retry is checked again");
}

fn join_msg_again() -> Message {
    join(None)
}

#[test]
fn a_wallet_place_is_taken_by_the_agent_that_proves_it() {
    let mut h = HostCore::new(descriptor(&[A, WALLET]), member(A));
    let out = h.handle(HostIn::Message { msg: &join(Some(WALLET)), sender: B });
    let [HostOut::Verify { pid: 1, join, join_id, .. }] = &out[..] else { panic!("{out:?}") };
    let v = HostIn::Verdict {
        pid: 1,
        sender: B.into(),
        join: join.clone(),
        join_id: join_id.clone(),
        result: Ok(Some("account did:pkh:…".into())),
    };
    let out = h.handle(v);
    let started = out.iter().find_map(|o| if let HostOut::Started(m) = o { Some(m.clone()) } else { None }).unwrap();
    assert_eq!(started[1].did, WALLET);
    assert_eq!(started[1].agent, B, "the agent acts for the wallet");
    // Another agent cannot take the place afterwards.
}

#[test]
fn the_host_gives_up_at_expiry_naming_who_is_missing() {
    let mut h = host();
    assert!(h.handle(HostIn::Tick(999)).is_empty());
    let out = h.handle(HostIn::Tick(1000));
    let Some(HostOut::Failed(Error::Timeout(why))) = out.last() else { panic!("{out:?}") };
    assert!(why.contains("pid 1") && why.contains("pid 2") && why.contains(B), "{why}");
}

#[test]
fn a_joiner_accepts_only_the_roster_it_saw_with_itself_in_place() {
    let d = descriptor(&[A, B, C]);
    let start = |members: Vec<Member>| Message::typed(&Start { session: "sess".into(), members });
    let mut j = JoinCore::new(d.clone(), 1, B, "join-1");
    // From someone else than the host: ignored.
    assert!(j.handle(JoinIn::Message { msg: &start(vec![member(A), member(B), member(C)]), sender: C }).is_none());
    let good = start(vec![member(A), member(B), member(C)]);
    assert!(matches!(j.handle(JoinIn::Message { msg: &good, sender: A }), Some(JoinOut::Started(_))));
    let mut swapped = vec![member(A), member(C), member(B)];
    let mut j = JoinCore::new(d.clone(), 1, B, "join-1");
    let out = j.handle(JoinIn::Message { msg: &start(swapped.clone()), sender: A });
    assert!(matches!(out, Some(JoinOut::Failed(Error::Protocol(why))) if why.contains("pid 1")));
    swapped[1] = Member { agent: STRANGER.into(), ..member(B) };
    let mut j = JoinCore::new(d.clone(), 1, B, "join-1");
    let out = j.handle(JoinIn::Message { msg: &start(vec![member(A), swapped[1].clone(), member(C)]), sender: A });
    assert!(matches!(out, Some(JoinOut::Failed(Error::Protocol(_)))), "nobody acts for a did:key but itself");
    let mut j = JoinCore::new(d, 1, B, "join-1");
    let mut refused = ProblemReport::answering(&join(None), "e.p.req.proof.expired", "too old");
    refused.pthid = Some("join-1".into());
    let out = j.handle(JoinIn::Message { msg: &refused, sender: A });
    assert!(matches!(out, Some(JoinOut::Failed(Error::Refused { code, .. })) if code == "e.p.req.proof.expired"));
}

fn init() -> Message {
    Message::typed(&Init { session_id: "c2Vzcw".into(), roster_digest: "AA".into(), noise: "AA".into(), direct: None })
}

#[test]
fn the_mesh_answers_only_lower_pids_once_and_refuses_strangers() {
    // We are pid 1 of A, B, C: we initiate to C and answer A.
    let mut m = MeshCore::new(1, vec![A.into(), B.into(), C.into()], 1000);
    let out = m.start();
    assert!(matches!(&out[..], [MeshOut::Initiate(2)]), "{out:?}");
    m.handle(MeshIn::Initiated { pid: 2, init_id: "i2".into() });
    let out = m.handle(MeshIn::Message { msg: &init(), sender: STRANGER });
    assert!(
        matches!(&out[..], [MeshOut::Send(s)] if s.background && s.to == STRANGER),
        "an off-roster init is rejected in the background: {out:?}"
    );
    let out = m.handle(MeshIn::Message { msg: &init(), sender: C });
    assert!(matches!(&out[..], [MeshOut::Send(_)]), "a higher pid does not initiate");
    assert!(matches!(&m.handle(MeshIn::Message { msg: &init(), sender: A })[..], [MeshOut::Respond(0)]));
    assert!(m.handle(MeshIn::Message { msg: &init(), sender: A }).is_empty(), "a duplicate init is ignored");
    // An answer to our init from someone else is ignored; from C it completes.
    let mut accept = Message::typed(&Accept {
        noise: "AA".into(),
        relay: RelayOffer { url: "u".into(), route: "r".into(), secret: "s".into() },
        direct: None,
    });
    accept.thid = Some("i2".into());
    assert!(m.handle(MeshIn::Message { msg: &accept, sender: A }).is_empty());
    assert!(matches!(&m.handle(MeshIn::Message { msg: &accept, sender: C })[..], [MeshOut::Complete(2)]));
    assert!(m.handle(MeshIn::Done { pid: 0, result: Ok(()) }).is_empty());
    assert!(matches!(&m.handle(MeshIn::Done { pid: 2, result: Ok(()) })[..], [MeshOut::Up]));
}

#[test]
fn the_mesh_times_out_naming_the_missing_peers() {
    let mut m = MeshCore::new(0, vec![A.into(), B.into(), C.into()], 1000);
    m.start();
    m.handle(MeshIn::Done { pid: 1, result: Ok(()) });
    let out = m.handle(MeshIn::Tick(1000));
    assert!(matches!(&out[..], [MeshOut::Failed(Error::Timeout(w))] if w.contains("pid 2") && !w.contains("pid 1")));
}

#[test]
fn a_lost_peer_stops_mpyc_and_names_the_peer() {
    let mut s = Supervisor::new(0, vec![A.into(), B.into(), C.into()]);
    // Peer 2 finished cleanly before us: not a loss.
    assert!(s.handle(SupIn::Closed(2, CloseReason::Peer(CLOSE_DONE, "done".into()))).is_empty());
    let out = s.handle(SupIn::Closed(1, CloseReason::PeerLost));
    assert!(matches!(out[0], SupOut::Kill));
    assert!(matches!(&out[1], SupOut::CloseAll(1, why) if why.contains("lost pid 1")));
    assert!(matches!(out.last(), Some(SupOut::Finish(Err(Error::PeerLost { pid: 1, .. })))));
    assert!(s.is_over());
}

#[test]
fn a_clean_exit_waits_for_every_peer_then_flushes_then_closes() {
    let mut s = Supervisor::new(1, vec![A.into(), B.into(), C.into()]);
    let out = s.handle(SupIn::Exited(None));
    assert!(matches!(&out[..], [SupOut::State(_), SupOut::SendDone]), "{out:?}");
    assert!(s.handle(SupIn::PeerDone(0)).is_empty());
    assert!(matches!(&s.handle(SupIn::PeerDone(2))[..], [SupOut::Flush]));
    let out = s.handle(SupIn::Flushed);
    assert!(matches!(&out[..], [SupOut::CloseAll(0, _), SupOut::State(_), SupOut::Finish(Ok(()))]));
    // A peer that never says it is done: the grace period ends the wait.
    let mut s = Supervisor::new(0, vec![A.into(), B.into()]);
    s.handle(SupIn::Exited(None));
    assert!(matches!(&s.handle(SupIn::GraceOver)[..], [SupOut::Flush]));
    assert!(matches!(s.handle(SupIn::GraceOver).last(), Some(SupOut::Finish(Ok(())))));
    // MPyC failing: everyone is told why.
    let mut s = Supervisor::new(0, vec![A.into(), B.into()]);
    let out = s.handle(SupIn::Exited(Some("exit status: 1".into())));
    assert!(matches!(out.last(), Some(SupOut::Finish(Err(Error::Mpc(w)))) if w.contains("exit status: 1")));
}
