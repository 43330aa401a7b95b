//! Alert store throughput: how many alerts per second the SQLite writer commits, on the real
//! disk, with realistic alerts (the simulator's complaints and attacks, classified by the
//! shipped rules, complaints carrying tickets). `write_batch/N` is one transaction of N new
//! alerts; `hub/publish_flush` is the daemon's path end to end (sequence numbers, the writer
//! thread, commit, then the broadcast) for 10,000 alerts; `hub/update_flush` is repeats counted
//! on recent alerts. Figures go to BENCHMARKS.md next to the daemon's alert rate.

// criterion_group! generates undocumented items.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use liveguard::alerts::{Alert, AlertKind, Hub};
use liveguard::classify::{classify, Input, Scratch};
use liveguard::ingest::{Format, User};
use liveguard::metrics::Metrics;
use liveguard::rules;
use liveguard::simulate::{Generator, SimConfig};
use liveguard::store::{self, StoreConfig};
use liveguard::taxonomy::Class;
use liveguard::tickets::{Deadlines, Ticket, TicketConfig};

// The daemon binary's allocator (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `n` alerts made the way the daemon makes them, from the simulator's live mix.
fn alerts(n: usize) -> Vec<Alert> {
    liveguard::normalize::warm_up();
    let set = rules::load_dir(Path::new("rules")).expect("shipped rules compile");
    let mut g = Generator::new(SimConfig {
        rate: 1,
        rooms: 50,
        seconds: None,
        format: Format::Canonical,
        seed: 7,
        mix: liveguard::simulate::Mix::Busy,
    });
    let mut s = Scratch::new();
    let mut out = Vec::with_capacity(n);
    let now = liveguard::clock::now_ms();
    while out.len() < n {
        let c = g.next_comment();
        let v = classify(
            &set,
            &mut s,
            Input {
                text: &c.text,
                user: Some(&c.name),
                product: None,
            },
        );
        if v.class == Class::Neutral {
            continue;
        }
        let user = User {
            id: c.user.clone(),
            handle: None,
            name: Some(c.name.clone()),
        };
        let mut a = Alert::new(
            AlertKind::Comment,
            format!("room-{}", c.room),
            user,
            c.text.clone(),
            v,
            now,
        );
        a.msg_ids.push(c.msg_id.clone());
        if a.wants_ticket() {
            a.ticket = Some(Ticket::open(now, &Deadlines::default()));
        }
        out.push(a);
    }
    out
}

fn scratch_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-state");
    std::fs::create_dir_all(&d).expect("bench state dir");
    d
}

fn fresh_db(tag: &str) -> PathBuf {
    let p = scratch_dir().join(format!("store-{tag}-{}.db", std::process::id()));
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
    }
    p
}

fn benches(c: &mut Criterion) {
    let pool = alerts(10_000);
    let mut g = c.benchmark_group("store");
    g.sample_size(20);
    for n in [1usize, 64, 1024] {
        g.throughput(Throughput::Elements(n as u64));
        let path = fresh_db(&format!("batch{n}"));
        let mut conn = store::open_writer(&path, store::Durability::Normal).expect("opens");
        let next_seq = std::cell::Cell::new(1u64);
        g.bench_function(format!("write_batch/{n}"), |b| {
            b.iter_batched(
                || {
                    (0..n)
                        .map(|i| {
                            let mut a = pool[(next_seq.get() as usize + i) % pool.len()].clone();
                            a.seq = next_seq.get() + i as u64;
                            let a = Arc::new(a);
                            let body = store::body(&a);
                            store::writer::Write::new(a, body, None)
                        })
                        .collect::<Vec<_>>()
                },
                |w| {
                    // Each alert's room entry written with it (the writer holds them back
                    // for a bulk pass a second later; this is the dearer, per-alert case).
                    let rooms = store::writer::RoomPass::none(store::rooms::Marks::all());
                    store::writer::write_batch(&mut conn, &w, &rooms).expect("commits");
                    next_seq.set(next_seq.get() + n as u64);
                },
                BatchSize::LargeInput,
            )
        });
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    g.throughput(Throughput::Elements(pool.len() as u64));
    let cfg = StoreConfig {
        path: Some(fresh_db("hub")),
        ..StoreConfig::default()
    };
    let hub = Hub::open(&cfg, TicketConfig::default(), 1024, Arc::new(Metrics::new())).expect("opens");
    // A subscriber, as the console would be (messages are built and sent either way).
    let _rx = hub.subscribe();
    g.bench_function("hub/publish_flush_10000", |b| {
        b.iter_batched(
            || pool.clone(),
            |batch| {
                for a in batch {
                    hub.publish(a);
                }
                rt.block_on(hub.flush());
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("hub/update_flush_10000", |b| {
        b.iter(|| {
            let top = hub.last_seq();
            for i in 0..pool.len() as u64 {
                hub.update(top - (i % 1_000), 0, |a| a.count += 1);
            }
            rt.block_on(hub.flush());
        })
    });
    g.finish();
    hub.close();
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
