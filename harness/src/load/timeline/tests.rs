use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn event(at_ms: u64, op: Op, failed: Option<FailKind>) -> Event {
    Event {
        at: ms(at_ms),
        latency: ms(at_ms % 7 + 1),
        op,
        failed,
        session_lost: false,
    }
}

#[test]
fn buckets_count_successes_failures_and_lost_sessions_where_they_ended() {
    let mut lost = event(250, Op::Call, Some(FailKind::Status(302)));
    lost.session_lost = true;
    let events = [
        event(10, Op::Redirect, None),
        event(20, Op::Call, None),
        event(150, Op::Call, Some(FailKind::Status(503))),
        event(160, Op::Upstream, None),
        lost,
        // Past the wall time: counted in the last bucket, not dropped.
        event(320, Op::Call, None),
    ];
    let timeline = Timeline::of(&events, ms(300), ms(100));
    assert_eq!(timeline.bucket_ms, 100);
    let rows: Vec<(f64, u64, u64, u64, u64)> = timeline
        .buckets
        .iter()
        .map(|b| (b.start_s, b.ok, b.failed, b.sessions_lost, b.calls))
        .collect();
    assert_eq!(
        rows,
        vec![(0.0, 2, 0, 0, 1), (0.1, 1, 1, 0, 0), (0.2, 1, 1, 1, 1)]
    );
    let total: u64 = timeline.buckets.iter().map(|b| b.ok + b.failed).sum();
    assert_eq!(total, events.len() as u64, "every request is in a bucket");
}

#[test]
fn the_longest_error_window_is_the_longest_run_of_failing_buckets() {
    let fail = Some(FailKind::Connect);
    let events = [
        event(50, Op::Call, fail),
        event(350, Op::Call, fail),
        event(450, Op::Call, fail),
        event(460, Op::Call, fail),
        event(550, Op::Call, fail),
        event(650, Op::Call, None),
        event(950, Op::Call, fail),
    ];
    let timeline = Timeline::of(&events, ms(1000), ms(100));
    assert_eq!(
        timeline.longest_error_window(),
        Some(ErrorWindow {
            start_s: 0.3,
            length_ms: 300.0,
            failed: 4
        })
    );
    let clean = Timeline::of(&[event(10, Op::Call, None)], ms(1000), ms(100));
    assert_eq!(clean.longest_error_window(), None);
}

#[test]
fn failures_are_counted_by_kind() {
    let events = [
        event(1, Op::Call, Some(FailKind::Status(503))),
        event(2, Op::Call, Some(FailKind::Status(503))),
        event(3, Op::Redirect, Some(FailKind::Connect)),
        event(4, Op::Login, Some(FailKind::Timeout)),
        event(5, Op::Call, Some(FailKind::Other)),
        event(6, Op::Call, None),
    ];
    let kinds = failed_by_kind(&events);
    let want: BTreeMap<String, u64> = [
        ("connect error", 1),
        ("other", 1),
        ("status 503", 2),
        ("timeout", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(kinds, want);
}

#[test]
fn percentiles_take_the_nearest_rank_of_successful_calls_only() {
    let mut events: Vec<Event> = (1..=100)
        .map(|i| Event {
            at: ms(i),
            latency: ms(i),
            op: Op::Call,
            failed: None,
            session_lost: false,
        })
        .collect();
    // A slow failure and a slow login do not count.
    events.push(Event {
        at: ms(50),
        latency: ms(10_000),
        op: Op::Call,
        failed: Some(FailKind::Timeout),
        session_lost: false,
    });
    events.push(Event {
        at: ms(50),
        latency: ms(10_000),
        op: Op::Login,
        failed: None,
        session_lost: false,
    });
    assert_eq!(call_p99_between(&events, ms(0), ms(1000)), (99.0, 100));
    assert_eq!(call_p99_between(&events, ms(0), ms(51)), (50.0, 50));
    assert_eq!(call_p99_between(&events, ms(500), ms(600)), (0.0, 0));
    assert_eq!(failed_between(&events, ms(0), ms(1000)), 1);
}

#[test]
fn runs_up_to_a_minute_get_100_ms_buckets_and_longer_ones_1_s() {
    assert_eq!(bucket_width(Duration::from_secs(60)), ms(100));
    assert_eq!(bucket_width(Duration::from_secs(61)), ms(1000));
}

#[test]
fn the_text_timeline_sums_per_second_and_the_svg_marks_each_fault() {
    let events: Vec<Event> = (0..30)
        .map(|i| {
            event(
                i * 100,
                Op::Call,
                (i == 12).then_some(FailKind::Status(503)),
            )
        })
        .collect();
    let timeline = Timeline::of(&events, ms(3000), ms(100));
    let text = timeline.text();
    assert!(text.contains("       1        9       1     0"), "{text}");
    let svg = timeline.svg_panel(&[(1.2, "extauth-kill:0".to_owned())], 420.0, 760.0);
    assert!(svg.contains(">extauth-kill:0</text>"), "{svg}");
    assert!(svg.contains("stroke-dasharray"), "{svg}");
    assert!(svg.contains("1 failed at 1.2 s"), "{svg}");
}
