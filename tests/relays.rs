//! Frames produced by the real relay libraries (`tests/fixtures/relays/`, see its README for
//! how each was made): one test per fixture asserts what `--format tiktok` reads from it (the
//! comment with its writer, room and signals, or "ignored", or "retracted"), and one runs every
//! fixture through the real `liveguard run --format tiktok` over a loopback WebSocket and sees
//! the alert, the exemption, the ignore or the retraction, with zero parse errors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use liveguard::ingest::tiktok::synthetic_id;
use liveguard::ingest::{parse_frame_from, Event, Format, Origin};
use serde_json::Value;

use crate::util::live::{metric, wait_metric, Firehose, Subscriber};
use crate::util::{repo, run_command, spawn, state_dir};

/// The room of every nested (v2/v3) fixture.
const ROOM: &str = "7420000000000000001";
/// The source's room in these tests: where shapes without a room go.
const SOURCE_ROOM: &str = "source-room";
const SOURCE: &str = "relay-test";
const RECEIVED_MS: u64 = 1_764_000_009_500;

/// What a fixture should read as.
enum Want {
    Comment(Expect),
    /// Event kinds, as counted in `events_ignored_total`.
    Ignored(&'static [&'static str]),
    /// A deletion naming the message ids of these chat fixtures.
    Retracts(&'static [&'static str]),
}

struct Expect {
    text: &'static str,
    user_id: &'static str,
    handle: Option<&'static str>,
    name: Option<&'static str>,
    /// None: the frame has no room, so the source's.
    room: Option<&'static str>,
    /// None: the frame has no id, so a synthetic one.
    msg_id: Option<&'static str>,
    moderator: Option<bool>,
    follower: Option<bool>,
    gifter: Option<bool>,
    fans_club_level: Option<u32>,
}

impl Expect {
    const fn comment(
        text: &'static str,
        user_id: &'static str,
        handle: &'static str,
        name: &'static str,
    ) -> Self {
        Expect {
            text,
            user_id,
            handle: Some(handle),
            name: Some(name),
            room: Some(ROOM),
            msg_id: None,
            moderator: None,
            follower: None,
            gifter: None,
            fans_club_level: None,
        }
    }
    const fn id(self, msg_id: &'static str) -> Self {
        Expect {
            msg_id: Some(msg_id),
            ..self
        }
    }
    const fn no_room(self) -> Self {
        Expect { room: None, ..self }
    }
    /// Moderator, follower, gifter.
    const fn signals(self, m: Option<bool>, f: Option<bool>, g: Option<bool>) -> Self {
        Expect {
            moderator: m,
            follower: f,
            gifter: g,
            ..self
        }
    }
    const fn fans(self, level: u32) -> Self {
        Expect {
            fans_club_level: Some(level),
            ..self
        }
    }
}

const YES: Option<bool> = Some(true);
const NO: Option<bool> = Some(false);

/// Every fixture, a deletion after the chats it deletes (the real-binary test sends them in
/// this order).
const FIXTURES: &[(&str, Want)] = &[
    (
        "tlc1-chat.json",
        Want::Comment(
            Expect::comment(
                "收到的手镯有裂纹，要退货",
                "6900000000000000101",
                "jade_fan01",
                "Mei 🌸",
            )
            .id("7420000000000000101")
            .no_room()
            .signals(NO, YES, YES)
            .fans(3),
        ),
    ),
    (
        "tlc1-chat-typed.json",
        Want::Comment(
            Expect::comment("你们就是骗子", "6900000000000000102", "room_mod02", "Mod Lin")
                .id("7420000000000000102")
                .no_room()
                .signals(YES, NO, NO)
                .fans(0),
        ),
    ),
    ("tlc1-gift.json", Want::Ignored(&["gift"])),
    ("tlc1-like.json", Want::Ignored(&["like"])),
    ("tlc1-member.json", Want::Ignored(&["member"])),
    (
        "tlp2-chat.json",
        Want::Comment(
            Expect::comment("加我vx便宜一半", "6900000000000000201", "cheap_jade201", "Sunny")
                .id("7420000000000000201")
                .signals(NO, NO, NO),
        ),
    ),
    (
        "tlp2-imdelete.json",
        Want::Retracts(&["tlp2-chat.json", "tlc1-chat.json"]),
    ),
    (
        "tlc2-chat.json",
        Want::Comment(
            Expect::comment(
                "the ring I got last week is cracked",
                "6900000000000000301",
                "ringbuyer301",
                "Ava R.",
            )
            .id("7420000000000000301")
            .signals(NO, YES, YES)
            .fans(5),
        ),
    ),
    (
        "tlc2-chat-bare.json",
        Want::Comment(
            Expect::comment(
                "收到的项链颜色和直播完全不一样",
                "6900000000000000302",
                "necklace302",
                "林小姐",
            )
            .id("7420000000000000302")
            .signals(NO, NO, NO),
        ),
    ),
    ("tlc2-imdelete.json", Want::Retracts(&["tlc2-chat.json"])),
    ("tlc2-gift.json", Want::Ignored(&["gift"])),
    ("tlc2-like.json", Want::Ignored(&["like"])),
    ("tlc2-member.json", Want::Ignored(&["member"])),
    (
        "tlc2-legacy-chat.json",
        Want::Comment(
            Expect::comment(
                "my order arrived broken and nobody answers",
                "6900000000000000307",
                "broken307",
                "Ben",
            )
            .id("7420000000000000307")
            .signals(NO, YES, NO)
            .fans(0),
        ),
    ),
    ("tlc2-legacy-gift.json", Want::Ignored(&["gift"])),
    (
        "euler-v1-chat.json",
        Want::Comment(
            Expect::comment(
                "this shop is a scam",
                "6900000000000000401",
                "scamcaller401",
                "Kai",
            )
            .id("7420000000000000401")
            .no_room()
            .signals(NO, NO, NO),
        ),
    ),
    (
        "euler-v2-chat.json",
        Want::Comment(
            Expect::comment(
                "上次买的手链戴了两天就断了",
                "6900000000000000402",
                "bracelet402",
                "王姐",
            )
            .id("7420000000000000402")
            .signals(NO, YES, NO)
            .fans(2),
        ),
    ),
    ("euler-v2-imdelete.json", Want::Retracts(&["euler-v2-chat.json"])),
    (
        "euler-v2-others.json",
        Want::Ignored(&["workerinfo", "gift", "like", "member"]),
    ),
    (
        "tiktoklive-comment.json",
        Want::Comment(
            Expect::comment("假货，别买", "6900000000000000501", "fakealert501", "Zhou 周")
                .id("7420000000000000501")
                .signals(NO, YES, NO)
                .fans(4),
        ),
    ),
    (
        "tiktoklive-imdelete.json",
        Want::Retracts(&["tiktoklive-comment.json"]),
    ),
    ("tiktoklive-gift.json", Want::Ignored(&["gift"])),
    ("tiktoklive-like.json", Want::Ignored(&["like"])),
    ("tiktoklive-join.json", Want::Ignored(&["join"])),
    (
        "tikfinity-chat.json",
        Want::Comment(
            Expect::comment(
                "the necklace tarnished after two days",
                "6900000000000000601",
                "tarnish601",
                "Nora",
            )
            .id("7420000000000000601")
            .no_room()
            .signals(NO, NO, NO)
            .fans(0),
        ),
    ),
    ("tikfinity-gift.json", Want::Ignored(&["gift"])),
    (
        "tiktools-chat.json",
        Want::Comment(
            Expect::comment(
                "买的戒指掉钻了，怎么处理",
                "6900000000000000701",
                "ring_lady701",
                "陈女士",
            )
            .no_room()
            .signals(NO, YES, None),
        ),
    ),
    ("tiktools-roominfo.json", Want::Ignored(&["roominfo"])),
    (
        "handrolled-comment.json",
        Want::Comment(Expect {
            name: None,
            ..Expect::comment("you are all liars, fake jade", "amy_k", "amy_k", "").no_room()
        }),
    ),
];

fn dir() -> PathBuf {
    repo().join("tests/fixtures/relays")
}

fn frame(file: &str) -> String {
    std::fs::read_to_string(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn want(file: &str) -> &'static Want {
    &FIXTURES
        .iter()
        .find(|(f, _)| *f == file)
        .unwrap_or_else(|| panic!("{file} is not in FIXTURES"))
        .1
}

fn read(file: &str) -> Vec<Event> {
    let origin = Origin {
        source: SOURCE,
        room: SOURCE_ROOM,
        received_ms: RECEIVED_MS,
    };
    parse_frame_from(Format::Tiktok, &frame(file), &origin).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn only(file: &str, mut events: Vec<Event>) -> Event {
    assert_eq!(events.len(), 1, "{file}: {events:?}");
    events.remove(0)
}

/// The message id a chat fixture is read with.
fn msg_id(file: &str) -> String {
    match only(file, read(file)) {
        Event::Comment(c) => c.msg_id,
        other => panic!("{file}: want a comment, got {other:?}"),
    }
}

/// Asserts what `file` reads as.
fn check(file: &str) {
    match want(file) {
        Want::Comment(e) => {
            let Event::Comment(c) = only(file, read(file)) else {
                panic!("{file}: want a comment")
            };
            assert_eq!(
                (
                    c.text.as_str(),
                    c.user.id.as_str(),
                    c.user.handle.as_deref(),
                    c.user.name.as_deref()
                ),
                (e.text, e.user_id, e.handle, e.name),
                "{file}: text and writer"
            );
            assert_eq!(c.room, e.room.unwrap_or(SOURCE_ROOM), "{file}: room");
            match e.msg_id {
                Some(id) => assert_eq!(c.msg_id, id, "{file}: message id"),
                None => {
                    let time = if c.ts_ms > 0 {
                        c.ts_ms
                    } else {
                        RECEIVED_MS / 1000 * 1000
                    };
                    assert_eq!(
                        c.msg_id,
                        synthetic_id(SOURCE, e.user_id, e.text, time),
                        "{file}: synthetic id"
                    );
                }
            }
            let s = &c.signals;
            assert_eq!(
                (s.is_moderator, s.is_follower, s.is_gift_giver, s.fans_club_level),
                (e.moderator, e.follower, e.gifter, e.fans_club_level),
                "{file}: moderator, follower, gifter, fan-club level"
            );
        }
        Want::Ignored(kinds) => {
            let got = read(file);
            let want: Vec<Event> = kinds.iter().map(|k| Event::Ignored((*k).into())).collect();
            assert_eq!(got, want, "{file}");
        }
        Want::Retracts(chats) => {
            let Event::Delete {
                room,
                msg_ids,
                user_ids,
            } = only(file, read(file))
            else {
                panic!("{file}: want a deletion")
            };
            let want: Vec<String> = chats.iter().map(|c| msg_id(c)).collect();
            assert_eq!(msg_ids, want, "{file}: deleted ids");
            assert_eq!((room.as_deref(), user_ids.len()), (Some(ROOM), 0), "{file}");
        }
    }
}

macro_rules! per_fixture {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($file);
            }
        )*

        #[test]
        fn every_fixture_file_has_its_test() {
            let tested: Vec<&str> = vec![$($file),*];
            let mut files: Vec<String> = std::fs::read_dir(dir())
                .expect("fixtures dir")
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|f| f.ends_with(".json") && !f.starts_with("package"))
                .collect();
            files.sort();
            let mut listed: Vec<&str> = FIXTURES.iter().map(|(f, _)| *f).collect();
            listed.sort();
            let mut tested = tested;
            tested.sort();
            assert_eq!(files, listed, "every fixture file is in FIXTURES");
            assert_eq!(listed, tested, "every fixture has its test");
        }
    };
}

per_fixture! {
    tlc1_chat => "tlc1-chat.json",
    tlc1_chat_typed => "tlc1-chat-typed.json",
    tlc1_gift => "tlc1-gift.json",
    tlc1_like => "tlc1-like.json",
    tlc1_member => "tlc1-member.json",
    tlp2_chat => "tlp2-chat.json",
    tlp2_imdelete => "tlp2-imdelete.json",
    tlc2_chat => "tlc2-chat.json",
    tlc2_chat_bare => "tlc2-chat-bare.json",
    tlc2_imdelete => "tlc2-imdelete.json",
    tlc2_gift => "tlc2-gift.json",
    tlc2_like => "tlc2-like.json",
    tlc2_member => "tlc2-member.json",
    tlc2_legacy_chat => "tlc2-legacy-chat.json",
    tlc2_legacy_gift => "tlc2-legacy-gift.json",
    euler_v1_chat => "euler-v1-chat.json",
    euler_v2_chat => "euler-v2-chat.json",
    euler_v2_imdelete => "euler-v2-imdelete.json",
    euler_v2_others => "euler-v2-others.json",
    tiktoklive_comment => "tiktoklive-comment.json",
    tiktoklive_imdelete => "tiktoklive-imdelete.json",
    tiktoklive_gift => "tiktoklive-gift.json",
    tiktoklive_like => "tiktoklive-like.json",
    tiktoklive_join => "tiktoklive-join.json",
    tikfinity_chat => "tikfinity-chat.json",
    tikfinity_gift => "tikfinity-gift.json",
    tiktools_chat => "tiktools-chat.json",
    tiktools_roominfo => "tiktools-roominfo.json",
    handrolled_comment => "handrolled-comment.json",
}

/// Waits for the `update` messages retracting each alert of `seqs`.
async fn retracted(sub: &mut Subscriber, file: &str, seqs: &[u64]) {
    let mut left: Vec<u64> = seqs.to_vec();
    while !left.is_empty() {
        let m = sub.next_msg().await;
        if m["type"] == "update" && m["retracted"] == true {
            left.retain(|s| Some(*s) != m["seq"].as_u64());
        } else {
            panic!("{file}: want the retraction of {left:?}, got {m}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_through_the_real_binary() {
    let mut fh = Firehose::start("127.0.0.1:0").await;
    let mut cmd = run_command(&fh.url(), &state_dir());
    cmd.args(["--format", "tiktok"]);
    // Stopped even when an assert fails (an orphan daemon would outlive the test run).
    let (_daemon, addr) = tokio::task::spawn_blocking(move || spawn(cmd))
        .await
        .expect("join");
    fh.connected().await;
    let mut sub = Subscriber::connect(addr, "").await;
    let mut seq_of: HashMap<&str, u64> = HashMap::new();
    let (mut exempt, mut comments) = (0.0, 0.0);
    let mut ignored: HashMap<&str, f64> = HashMap::new();
    for (file, want) in FIXTURES {
        fh.send(frame(file));
        match want {
            Want::Comment(e) if e.moderator == YES => {
                exempt += 1.0;
                comments += 1.0;
                wait_metric(addr, "liveguard_exempt_total", exempt).await;
            }
            Want::Comment(e) => {
                comments += 1.0;
                let a: Value = sub.next_alert().await;
                let got = (
                    a["text"].as_str(),
                    a["user"]["id"].as_str(),
                    a["user"]["handle"].as_str(),
                    a["user"]["name"].as_str(),
                    a["room"].as_str(),
                );
                let room = e.room.unwrap_or("default");
                assert_eq!(
                    got,
                    (Some(e.text), Some(e.user_id), e.handle, e.name, Some(room)),
                    "{file}: {a}"
                );
                if let Some(id) = e.msg_id {
                    assert_eq!(a["msg_ids"][0], id, "{file}");
                } else {
                    assert!(
                        a["msg_ids"][0].as_str().is_some_and(|m| m.starts_with("syn-")),
                        "{file}: {a}"
                    );
                }
                seq_of.insert(file, a["seq"].as_u64().expect("seq"));
            }
            Want::Ignored(kinds) => {
                for k in *kinds {
                    *ignored.entry(k).or_default() += 1.0;
                }
                for k in *kinds {
                    let prefix = format!("liveguard_events_ignored_total{{kind=\"{k}\"}}");
                    wait_metric(addr, &prefix, ignored[k]).await;
                }
            }
            Want::Retracts(chats) => {
                let seqs: Vec<u64> = chats.iter().map(|c| seq_of[c]).collect();
                retracted(&mut sub, file, &seqs).await;
            }
        }
    }
    wait_metric(addr, "liveguard_comments_total", comments).await;
    assert_eq!(
        metric(addr, "liveguard_parse_errors_total").await,
        0.0,
        "no frame was rejected"
    );
    let retractions = FIXTURES
        .iter()
        .map(|(_, w)| match w {
            Want::Retracts(c) => c.len() as f64,
            _ => 0.0,
        })
        .sum::<f64>();
    assert_eq!(metric(addr, "liveguard_retracted_total").await, retractions);
    assert_eq!(
        sub.try_next(Duration::from_millis(300)).await,
        None,
        "nothing else: no alert from a gift, like or join"
    );
}
