use super::*;

fn request(pkce: Option<Pkce>) -> AuthRequest {
    AuthRequest {
        client_id: "c".into(),
        redirect_uri: "http://app/cb".into(),
        redirect_uri_sent: true,
        state: Some("s".into()),
        nonce: None,
        scope: Scope::granted_for(Some("openid")),
        pkce,
        restart_query: "client_id=c".into(),
    }
}

fn store() -> Store {
    Store::new(Lifetimes::default())
}

#[test]
fn a_code_can_be_redeemed_once() {
    let mut s = store();
    let (sid, session) = s.create_session("u", 1000);
    let code = s.issue_code(request(None), &sid, &session, "1", 1000);
    assert!(s.redeem_code(&code, 1001).is_some());
    assert!(s.redeem_code(&code, 1001).is_none());
}

#[test]
fn a_code_expires_after_its_lifetime() {
    let mut s = store();
    let (sid, session) = s.create_session("u", 1000);
    let code = s.issue_code(request(None), &sid, &session, "1", 1000);
    assert!(s.redeem_code(&code, 1060).is_none());
}

#[test]
fn codes_look_like_keycloak_codes() {
    let mut s = store();
    let (sid, session) = s.create_session("u", 1000);
    let code = s.issue_code(request(None), &sid, &session, "1", 1000);
    let parts: Vec<&str> = code.split('.').collect();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1], sid);
}

#[test]
fn a_pending_login_is_found_only_with_all_its_parameters() {
    let mut s = store();
    let (tab, code) = s.begin_login(request(None), 1000);
    assert!(s.pending(&tab, &code, "c", 1001).is_ok());
    assert_eq!(
        s.pending(&tab, "other", "c", 1001).unwrap_err(),
        PendingLookup::Unknown
    );
    assert_eq!(
        s.pending(&tab, &code, "d", 1001).unwrap_err(),
        PendingLookup::Unknown
    );
    assert_eq!(
        s.pending("nope", &code, "c", 1001).unwrap_err(),
        PendingLookup::Unknown
    );
}

#[test]
fn an_old_pending_login_is_expired_with_its_restart_query() {
    let mut s = store();
    let (tab, code) = s.begin_login(request(None), 1000);
    assert_eq!(
        s.pending(&tab, &code, "c", 1000 + 1800).unwrap_err(),
        PendingLookup::Expired {
            restart_query: "client_id=c".into()
        }
    );
}

#[test]
fn sessions_idle_out_and_touching_extends_them() {
    let mut s = store();
    let (sid, _) = s.create_session("u", 1000);
    assert_eq!(s.touch_session(&sid, 2000), Some(2000 + 1800));
    assert!(s.live_session(&sid, 3799).is_some());
    assert!(s.live_session(&sid, 3800).is_none());
    assert_eq!(s.touch_session(&sid, 3800), None);
}

#[test]
fn sessions_end_at_their_maximum_lifetime_however_active() {
    let mut s = store();
    let (sid, _) = s.create_session("u", 0);
    let mut t = 0;
    while t < 36000 - 1000 {
        t += 1000;
        assert!(s.touch_session(&sid, t).is_some(), "at {t}");
    }
    assert_eq!(s.touch_session(&sid, 35500), Some(36000));
    assert!(s.live_session(&sid, 36000).is_none());
}

#[test]
fn ending_a_session_kills_its_codes_and_refresh_tokens() {
    let mut s = store();
    let (sid, session) = s.create_session("u", 1000);
    let code = s.issue_code(request(None), &sid, &session, "1", 1000);
    s.remember_refresh(
        "jti".into(),
        RefreshGrant {
            client_id: "c".into(),
            sid: sid.clone(),
            user_id: "u".into(),
            nonce: None,
            scope: Scope::granted_for(None),
            auth_time: 1000,
            acr: "1",
        },
    );
    assert!(s.end_session(&sid).is_some());
    assert!(s.redeem_code(&code, 1001).is_none());
    assert!(s.peek_refresh("jti").is_none());
    assert_eq!(s.end_session(&sid), None, "ended once");
}

#[test]
fn an_ended_session_names_every_client_that_got_a_code_once() {
    let mut s = store();
    let (sid, session) = s.create_session("u", 1000);
    let mut other = request(None);
    other.client_id = "other".into();
    s.issue_code(request(None), &sid, &session, "1", 1000);
    s.issue_code(other, &sid, &session, "0", 1001);
    s.issue_code(request(None), &sid, &session, "0", 1002);
    let ended = s.end_session(&sid).unwrap();
    assert_eq!(ended.sid, sid);
    assert_eq!(ended.user_id, "u");
    assert_eq!(ended.clients, [request(None).client_id, "other".to_owned()]);
}

#[test]
fn sessions_of_a_user_are_the_live_ones_oldest_first() {
    let mut s = store();
    let (old, _) = s.create_session("u", 1000);
    let (first, _) = s.create_session("u", 4000);
    let (second, _) = s.create_session("u", 4100);
    s.create_session("someone else", 4100);
    // The default idle timeout is 1800 s: the session of t=1000 is over at t=4200.
    assert_eq!(s.sessions_of_user("u", 4200), [first, second]);
    assert!(!s.sessions_of_user("u", 4200).contains(&old), "idled out");
    assert!(s.sessions_of_user("nobody", 4200).is_empty());
}

#[test]
fn expired_entries_are_purged() {
    let mut s = store();
    let (sid, session) = s.create_session("u", 1000);
    s.issue_code(request(None), &sid, &session, "1", 1000);
    s.begin_login(request(None), 1000);
    // Far in the future, the next write sweeps everything old.
    s.begin_login(request(None), 1_000_000);
    assert_eq!(s.counts(), (1, 0, 0, 0));
}

#[test]
fn pkce_verification_cases() {
    // RFC 7636 appendix B.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let s256 = Pkce {
        challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        method: PkceMethod::S256,
    };
    let plain = Pkce {
        challenge: verifier.into(),
        method: PkceMethod::Plain,
    };
    let cases = [
        ("S256 right verifier", &s256, Some(verifier), Ok(())),
        (
            "S256 wrong verifier",
            &s256,
            Some(&"x".repeat(43)[..]),
            Err(PkceFailure::Mismatch),
        ),
        (
            "S256 missing verifier",
            &s256,
            None,
            Err(PkceFailure::Missing),
        ),
        (
            "S256 too short verifier",
            &s256,
            Some("short"),
            Err(PkceFailure::Malformed),
        ),
        ("plain right verifier", &plain, Some(verifier), Ok(())),
        (
            "plain bad characters",
            &plain,
            Some(&"!".repeat(43)[..]),
            Err(PkceFailure::Malformed),
        ),
    ];
    for (label, pkce, verifier, want) in cases {
        assert_eq!(pkce.verify(verifier), want, "{label}");
    }
}

#[test]
fn debug_output_shows_counts_not_codes() {
    let mut s = store();
    let (sid, session) = s.create_session("u", 1000);
    let code = s.issue_code(request(None), &sid, &session, "1", 1000);
    let shown = format!("{s:?}");
    assert!(!shown.contains(&code) && !shown.contains(&sid), "{shown}");
}

#[test]
fn an_expired_session_is_purged_unless_expired_ones_are_kept() {
    let idle = Lifetimes::default().sso_idle;
    for (keep, live_after_clock_back) in [(false, false), (true, true)] {
        let mut s = if keep {
            store().keep_expired()
        } else {
            store()
        };
        let (sid, _) = s.create_session("u", 1000);
        // Another login once the first session has idled out runs the cleanup...
        s.create_session("v", 1000 + idle);
        // ...and the clock is set back before that expiry.
        assert_eq!(
            s.live_session(&sid, 1000 + idle - 60).is_some(),
            live_after_clock_back,
            "keep_expired {keep}"
        );
    }
}
