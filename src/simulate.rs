//! A simulated firehose for demos, tests and benchmarks: a WebSocket server streaming live
//! comments across rooms in the canonical or the TikTok relay format. The [`Mix::Live`] mix is
//! what a live room looks like (chatter and questions in zh and en; at the demo's 20
//! comments/s a genuine complaint every few seconds, some attacks including diversion handles,
//! a coordinated brigade every few minutes); [`Mix::Busy`] is the heavier mix the benchmarks
//! measure.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::clock::now_ms;
use crate::ingest::Format;
use crate::shutdown::Shutdown;

const NEUTRAL: &[&str] = &[
    "主播晚上好",
    "这个多少钱",
    "三号链接还有吗",
    "会不会褪色？",
    "想要那个手镯",
    "上车上车",
    "今天有优惠吗",
    "宝宝们晚上好",
    "这个是真金吗？",
    "尺寸有几号",
    "看看7号",
    "好看好看",
    "哈哈哈哈哈",
    "来了来了",
    "没有裂，很满意",
    "有没有大一点的",
    "已拍",
    "求讲解5号",
    "主播皮肤好白",
    "这个适合送妈妈吗",
    "能刻字吗",
    "love this necklace",
    "how much is the ring?",
    "does it tarnish?",
    "hi from texas",
    "is this real gold?",
    "what size is that",
    "beautiful!!",
    "first time here",
    "can you show #3",
    "no cracks, very happy",
    "wow so pretty",
    "following!",
    "ordered twice, love it",
    "can I get it in silver?",
    "hello everyone",
];

const COMPLAINTS: &[&str] = &[
    "上次买的手链戴了两天就断了",
    "收到的戒指有裂纹",
    "戴了一周就掉色发黑了",
    "吊坠上的钻掉了一颗",
    "收到的项链颜色和直播完全不一样",
    "实物比直播里小很多，光泽也差",
    "买的金手镯是假的，根本不是足金",
    "证书是假的吧，查不到编号",
    "戒指太小了戴不进去",
    "手镯太大了一直往下掉",
    "我的订单一周了还没发货",
    "快递显示签收了但我没收到",
    "盒子压坏了，耳环也变形了",
    "客服一直不回消息",
    "申请退款三天了没人处理",
    "我要退货退款",
    "the ring I got last week is cracked",
    "the clasp broke the first day I wore it",
    "my necklace turned my neck green",
    "color is totally different from the stream",
    "this is not real silver, I had it tested",
    "the bracelet is way too small, doesn't fit",
    "my order still hasn't arrived after 2 weeks",
    "customer service never replied to my messages",
    "I want a refund, the stone fell out",
];

const ATTACKS: &[&str] = &[
    "你们就是骗子",
    "垃圾主播滚",
    "骗*子直播间，大家别买",
    "都是假货别上当",
    "加我vx便宜一半",
    "同款私聊我，v信 jade_cheap888",
    "加V 一三八 0013 8000 更便宜",
    "来我店里看看，比这里便宜",
    "this is a sc4m",
    "add my whatsapp for the same ring half price",
    "you are an idiot",
    "s.c.a.m shop, don't buy",
    "check out my shop www.cheapjewels.shop",
    "fake fake fake",
    "dm me on telegram for cheaper",
    "follow me for free giveaways",
];

const BRIGADE: &[&str] = &[
    "骗子直播间，大家快跑",
    "假货！别买！",
    "this shop is a scam",
    "加我vx买正品",
];

const NAMES: &[&str] = &[
    "lily",
    "小鱼",
    "wang",
    "阿珍",
    "momo",
    "Cindy",
    "老李",
    "糖糖",
    "月亮",
    "pearl",
    "Vivi",
    "amy",
    "jenny",
    "mark",
    "sara",
    "nina",
    "bob",
    "kate",
    "lee",
    "olivia",
    "sam",
    "grace",
    "小王",
    "路人甲",
];

/// How often each kind of comment comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mix {
    /// A live room: 1.25 % complaints, 2 % attacks, a brigade of four every ~3,000 comments;
    /// the rest chatter.
    #[default]
    Live,
    /// The benchmarks' heavier stream: 6 % complaints, 5 % attacks, a brigade every ~2,000.
    Busy,
}

impl Mix {
    /// Per 400 comments: complaints, attacks; and one brigade per this many comments.
    fn rates(self) -> (u32, u32, u32) {
        match self {
            Self::Live => (5, 8, 3_000),
            Self::Busy => (24, 20, 2_000),
        }
    }
}

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Comments per second per connection.
    pub rate: u32,
    /// Rooms the comments spread over.
    pub rooms: u32,
    /// Stop each connection after this long.
    pub seconds: Option<u64>,
    /// Output format.
    pub format: Format,
    /// Random seed (same seed, same stream).
    pub seed: u64,
    /// How often complaints, attacks and brigades come.
    pub mix: Mix,
}

/// Deterministic comment generator.
#[derive(Debug)]
pub struct Generator {
    rng: fastrand::Rng,
    cfg: SimConfig,
    seq: u64,
    /// A brigade in progress: (room, text, users left to post).
    brigade: Option<(u32, &'static str, u32)>,
}

/// One generated comment, before formatting.
#[derive(Debug, Clone, PartialEq)]
pub struct SimComment {
    /// Room index.
    pub room: u32,
    /// User id.
    pub user: String,
    /// Display name.
    pub name: String,
    /// Text.
    pub text: String,
    /// Message id.
    pub msg_id: String,
}

impl Generator {
    /// A generator for `cfg`.
    pub fn new(cfg: SimConfig) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(cfg.seed),
            cfg,
            seq: 0,
            brigade: None,
        }
    }

    /// The next comment, in the proportions of the configured [`Mix`].
    pub fn next_comment(&mut self) -> SimComment {
        let (complaints, attacks, brigade_every) = self.cfg.mix.rates();
        self.seq += 1;
        let rooms = self.cfg.rooms.max(1);
        if let Some((room, text, left)) = self.brigade {
            self.brigade = (left > 1).then_some((room, text, left - 1));
            let user = format!("brig{}-{}", self.seq % 97, left);
            return self.make(room, user, text.to_string());
        }
        if self.rng.u32(..brigade_every) == 0 {
            let room = self.rng.u32(..rooms);
            let text = BRIGADE[self.rng.usize(..BRIGADE.len())];
            self.brigade = Some((room, text, 3));
            return self.make(room, format!("brig{}-4", self.seq % 97), text.to_string());
        }
        let room = self.rng.u32(..rooms);
        let user = format!("u{}", self.rng.u32(..5000));
        let roll = self.rng.u32(..400);
        let list = if roll < complaints {
            COMPLAINTS
        } else if roll < complaints + attacks {
            ATTACKS
        } else {
            NEUTRAL
        };
        let text = list[self.rng.usize(..list.len())].to_string();
        self.make(room, user, text)
    }

    fn make(&mut self, room: u32, user: String, text: String) -> SimComment {
        let name = NAMES[self.rng.usize(..NAMES.len())].to_string();
        SimComment {
            room,
            user,
            name,
            text,
            msg_id: format!("sim-{}-{}", self.cfg.seed, self.seq),
        }
    }

    /// The next comment as a frame of the configured format, stamped `ts_ms`.
    pub fn next_frame(&mut self, ts_ms: u64) -> String {
        let c = self.next_comment();
        frame(&c, self.cfg.format, ts_ms)
    }
}

/// Formats one comment as a frame.
pub fn frame(c: &SimComment, format: Format, ts_ms: u64) -> String {
    let room = format!("room-{}", c.room);
    let v = match format {
        Format::Canonical => serde_json::json!({
            "type": "liveguard.comment.v1", "platform": "sim", "room": {"id": room},
            "msg_id": c.msg_id, "ts_ms": ts_ms,
            "user": {"id": c.user, "handle": c.user, "name": c.name}, "text": c.text,
        }),
        Format::Tiktok => serde_json::json!({
            "timestamp": ts_ms,
            "messages": [{"type": "chat", "data": {
                "common": {"method": "WebcastChatMessage", "msgId": c.msg_id, "roomId": room, "createTime": ts_ms.to_string()},
                "user": {"userId": c.user, "uniqueId": c.user, "nickname": c.name},
                "comment": c.text,
                "userIdentity": {"isModeratorOfAnchor": false, "isFollowerOfAnchor": true},
            }}],
        }),
    };
    v.to_string()
}

/// Serves the simulated firehose on `listener` until shutdown: every connection gets its own
/// stream (seeded by `cfg.seed` plus the connection number).
pub async fn serve(listener: TcpListener, cfg: SimConfig, mut shutdown: Shutdown) {
    let mut n = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else { continue };
        n += 1;
        let cfg = SimConfig {
            seed: cfg.seed.wrapping_add(n),
            ..cfg.clone()
        };
        tokio::spawn(connection(stream, peer, cfg, shutdown.clone()));
    }
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, cfg: SimConfig, mut shutdown: Shutdown) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    tracing::info!(%peer, rate = cfg.rate, "simulator: subscriber connected");
    let (mut tx, mut rx) = ws.split();
    let mut gen = Generator::new(cfg.clone());
    // Send in 10 ms ticks, carrying the fraction over, so any rate is kept on average.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = f64::from(cfg.rate) / 100.0;
    let mut owed = 0.0;
    let deadline = cfg
        .seconds
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            m = rx.next() => if matches!(m, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) { return },
            _ = tick.tick() => {
                if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break;
                }
                owed += per_tick;
                let now = now_ms();
                while owed >= 1.0 {
                    owed -= 1.0;
                    if tx.feed(Message::Text(gen.next_frame(now).into())).await.is_err() {
                        return;
                    }
                }
                if tx.flush().await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = tx.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_a_realistic_mix() {
        let cfg = SimConfig {
            rate: 1,
            rooms: 5,
            seconds: None,
            format: Format::Canonical,
            seed: 7,
            mix: Mix::Busy,
        };
        let a: Vec<SimComment> = {
            let mut g = Generator::new(cfg.clone());
            (0..5000).map(|_| g.next_comment()).collect()
        };
        let mut g = Generator::new(cfg);
        assert_eq!(a[..50], (0..50).map(|_| g.next_comment()).collect::<Vec<_>>()[..]);
        let neutral = a.iter().filter(|c| NEUTRAL.contains(&c.text.as_str())).count();
        assert!(neutral > 4000 && neutral < 4700, "{neutral}");
        assert!(
            a.iter().any(|c| c.user.starts_with("brig")),
            "a brigade in 5,000 comments"
        );
        assert!(a.iter().all(|c| c.room < 5));
    }

    /// What the demo shows at its 20 comments/s, as the shipped rules classify it: mostly
    /// neutral, a complaint every few seconds, a brigade now and then (it was ~11 % alerts).
    #[test]
    fn the_live_mix_looks_like_a_live_room() {
        let rules = crate::rules::load(&crate::rules::RuleSource::BuiltIn).expect("built-in rules");
        let mut scratch = crate::classify::Scratch::new();
        let mut g = Generator::new(SimConfig {
            rate: 20,
            rooms: 3,
            seconds: None,
            format: Format::Canonical,
            seed: 1,
            mix: Mix::Live,
        });
        let n = 12_000; // ten minutes of the demo
        let (mut complaints, mut attacks, mut brigades) = (0, 0, 0);
        for _ in 0..n {
            let c = g.next_comment();
            if c.user.ends_with("-4") && c.user.starts_with("brig") {
                brigades += 1;
            }
            let input = crate::classify::Input {
                text: &c.text,
                ..Default::default()
            };
            match crate::classify::classify(&rules, &mut scratch, input).class {
                crate::taxonomy::Class::Complaint => complaints += 1,
                crate::taxonomy::Class::Attack => attacks += 1,
                crate::taxonomy::Class::Neutral => {}
            }
        }
        let neutral = n - complaints - attacks;
        assert!(neutral * 100 > n * 95, "{neutral} of {n} neutral");
        // 600 s of demo: a complaint every 2..10 s.
        assert!(
            (60..=300).contains(&complaints),
            "{complaints} complaints in 10 minutes"
        );
        assert!((1..=10).contains(&brigades), "{brigades} brigades in 10 minutes");
    }

    #[test]
    fn frames_parse_in_both_formats() {
        let c = SimComment {
            room: 1,
            user: "u1".into(),
            name: "amy".into(),
            text: "骗子".into(),
            msg_id: "m1".into(),
        };
        for f in [Format::Canonical, Format::Tiktok] {
            let ev = crate::ingest::parse_frame(f, &frame(&c, f, 5), "x").expect("parses");
            let crate::ingest::Event::Comment(got) = &ev[0] else {
                panic!("a comment")
            };
            assert_eq!(
                (got.room.as_str(), got.text.as_str(), got.ts_ms),
                ("room-1", "骗子", 5)
            );
        }
    }
}
