//! Forwarding database: learning rules, refusals, static entries, ageing with
//! a wrapping clock, eviction order, per-port limits.

use pvpass_core::fdb::*;

type Small = Fdb<4, 8>;

const AGE: u64 = 300;
const NOLIMIT: u32 = u32::MAX;

// A `static` initialiser: `new` is const.
static _STATIC_TABLE: DefaultFdb = DefaultFdb::new();

fn mac(n: u32) -> Mac {
    let b = n.to_be_bytes();
    [0x52, 0x54, b[0], b[1], b[2], b[3]]
}

fn entry(f: &Small, m: Mac) -> Option<FdbEntry> {
    f.iter().find(|e| e.mac == m).copied()
}

#[test]
fn empty_table() {
    let f = Small::new();
    assert!(f.is_empty());
    assert_eq!(f.len(), 0);
    assert_eq!(f.iter().count(), 0);
    assert_eq!(f.lookup(mac(1), 0, AGE), None);
    assert_eq!(f.lookup([0; 6], 0, AGE), None);
    let d = DefaultFdb::default();
    assert!(d.is_empty());
}

#[test]
fn refuses_group_and_zero_sources() {
    let mut f = Small::new();
    for m in [
        [0xff; 6],
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
        [0x33, 0x33, 0, 0, 0, 1],
        [0x03, 0, 0, 0, 0, 0],
    ] {
        assert_eq!(f.learn(m, 1, 0, AGE, NOLIMIT), Learn::Group, "{m:x?}");
        assert_eq!(f.lookup(m, 0, AGE), None);
    }
    assert_eq!(f.learn([0; 6], 1, 0, AGE, NOLIMIT), Learn::Zero);
    assert!(f.is_empty());
    // A locally administered unicast address (bit 1) is fine.
    assert_eq!(
        f.learn([0x02, 0, 0, 0, 0, 1], 1, 0, AGE, NOLIMIT),
        Learn::Added
    );
}

#[test]
fn learn_refresh_lookup() {
    let mut f = Small::new();
    assert_eq!(f.learn(mac(1), 7, 100, AGE, NOLIMIT), Learn::Added);
    assert_eq!(f.len(), 1);
    assert_eq!(f.lookup(mac(1), 100, AGE), Some(7));
    assert_eq!(f.lookup(mac(2), 100, AGE), None);
    assert_eq!(f.learn(mac(1), 7, 250, AGE, NOLIMIT), Learn::Refreshed);
    assert_eq!(f.len(), 1);
    let e = entry(&f, mac(1)).unwrap();
    assert_eq!((e.port, e.seen, e.is_static), (7, 250, false));
    // Refreshed at 250: live until 250 + AGE.
    assert_eq!(f.lookup(mac(1), 250 + AGE, AGE), Some(7));
    assert_eq!(f.lookup(mac(1), 251 + AGE, AGE), None);
}

#[test]
fn station_moves() {
    let mut f = Small::new();
    f.learn(mac(1), 1, 0, AGE, NOLIMIT);
    assert_eq!(
        f.learn(mac(1), 2, 10, AGE, NOLIMIT),
        Learn::Moved { from: 1 }
    );
    assert_eq!(f.lookup(mac(1), 10, AGE), Some(2));
    assert_eq!(f.len(), 1);
    assert_eq!(entry(&f, mac(1)).unwrap().seen, 10);
}

#[test]
fn aged_entry_counts_as_absent() {
    let mut f = Small::new();
    f.learn(mac(1), 1, 0, AGE, NOLIMIT);
    // Aged out: learning it again, on any port, is a new entry, not a move.
    assert_eq!(f.learn(mac(1), 2, AGE + 1, AGE, NOLIMIT), Learn::Added);
    assert_eq!(f.lookup(mac(1), AGE + 1, AGE), Some(2));
    assert_eq!(f.learn(mac(1), 2, 3 * AGE, AGE, NOLIMIT), Learn::Added);
    assert_eq!(f.len(), 1);
}

#[test]
fn ageing_boundary_and_age() {
    let mut f = Small::new();
    f.learn(mac(1), 1, 0, AGE, NOLIMIT);
    f.learn(mac(2), 1, 50, AGE, NOLIMIT);
    f.add_static(mac(3), 2, 0).unwrap();
    assert_eq!(
        f.lookup(mac(1), AGE, AGE),
        Some(1),
        "age == max_age is live"
    );
    assert_eq!(f.lookup(mac(1), AGE + 1, AGE), None);
    assert_eq!(f.age(AGE, AGE), 0);
    assert_eq!(f.age(AGE + 1, AGE), 1);
    assert_eq!(f.len(), 2);
    assert_eq!(f.lookup(mac(2), AGE + 1, AGE), Some(1));
    // Static entries never age.
    assert_eq!(f.age(u64::MAX / 4, AGE), 1);
    assert_eq!(f.lookup(mac(3), u64::MAX / 4, AGE), Some(2));
    assert_eq!(f.lookup(mac(3), u64::MAX / 4, 0), Some(2));
    assert_eq!(f.len(), 1);
    // max_age 0: only entries of this very instant are live.
    f.learn(mac(4), 1, 1000, AGE, NOLIMIT);
    assert_eq!(f.lookup(mac(4), 1000, 0), Some(1));
    assert_eq!(f.lookup(mac(4), 1001, 0), None);
}

#[test]
fn ageing_across_clock_wrap() {
    let mut f = Small::new();
    let t0 = u64::MAX - 100;
    f.learn(mac(1), 1, t0, AGE, NOLIMIT); // before the wrap
    f.learn(mac(2), 1, t0 + 90, AGE, NOLIMIT); // just before
    let now = t0.wrapping_add(250); // 149 after the wrap
    f.learn(mac(3), 1, now, AGE, NOLIMIT);
    assert_eq!(elapsed(t0, now), 250);
    for m in 1..=3 {
        assert_eq!(f.lookup(mac(m), now, AGE), Some(1), "mac {m}");
    }
    assert_eq!(f.learn(mac(1), 1, now, AGE, NOLIMIT), Learn::Refreshed);
    let later = t0.wrapping_add(90 + AGE + 1);
    assert_eq!(f.lookup(mac(2), later, AGE), None);
    assert_eq!(f.lookup(mac(1), later, AGE), Some(1));
    assert_eq!(f.age(later, AGE), 1);
    assert_eq!(f.len(), 2);
}

#[test]
fn timestamp_ahead_of_now_is_age_zero() {
    assert_eq!(elapsed(100, 40), 0);
    assert_eq!(elapsed(5, u64::MAX), 0, "5 is 6 ticks after u64::MAX");
    assert_eq!(elapsed(u64::MAX, 5), 6);
    let mut f = Small::new();
    f.learn(mac(1), 1, 1000, AGE, NOLIMIT);
    assert_eq!(f.lookup(mac(1), 10, AGE), Some(1));
    assert_eq!(f.age(10, AGE), 0);
}

#[test]
fn eviction_takes_the_ports_own_oldest_live_entry() {
    let mut f = Small::new();
    for (i, p, t) in [(1, 1, 40), (2, 1, 10), (3, 1, 30), (4, 2, 5)] {
        assert_eq!(f.learn(mac(i), p, t, AGE, NOLIMIT), Learn::Added);
    }
    // Port 2's entry is the oldest, but it is live and not port 1's.
    assert_eq!(
        f.learn(mac(5), 1, 50, AGE, NOLIMIT),
        Learn::Evicted {
            mac: mac(2),
            port: 1
        }
    );
    assert_eq!(
        f.learn(mac(6), 1, 50, AGE, NOLIMIT),
        Learn::Evicted {
            mac: mac(3),
            port: 1
        }
    );
    // A port with no entry of its own gets nothing.
    assert_eq!(f.learn(mac(7), 5, 50, AGE, NOLIMIT), Learn::Full);
    assert_eq!(f.len(), 4);
    let mut macs: Vec<Mac> = f.iter().map(|e| e.mac).collect();
    macs.sort();
    assert_eq!(macs, [mac(1), mac(4), mac(5), mac(6)]);
    assert_eq!(f.lookup(mac(2), 50, AGE), None);
    assert_eq!(f.lookup(mac(4), 50, AGE), Some(2));
    assert_eq!(f.lookup(mac(6), 50, AGE), Some(1));
}

#[test]
fn eviction_prefers_aged_entries_and_breaks_ties_by_mac() {
    let mut f = Small::new();
    f.learn(mac(1), 1, 500, AGE, NOLIMIT);
    f.learn(mac(4), 1, 0, AGE, NOLIMIT); // will be aged out
    f.learn(mac(3), 1, 400, AGE, NOLIMIT);
    f.learn(mac(2), 1, 400, AGE, NOLIMIT);
    // Replacing an aged-out entry loses nothing live: not an eviction.
    assert_eq!(f.learn(mac(5), 1, 500, AGE, NOLIMIT), Learn::Added);
    assert_eq!(entry(&f, mac(4)), None);
    // 2 and 3 are equally old: the smaller MAC goes first.
    assert_eq!(
        f.learn(mac(6), 1, 500, AGE, NOLIMIT),
        Learn::Evicted {
            mac: mac(2),
            port: 1
        }
    );
    assert_eq!(
        f.learn(mac(7), 1, 500, AGE, NOLIMIT),
        Learn::Evicted {
            mac: mac(3),
            port: 1
        }
    );
}

#[test]
fn eviction_order_across_clock_wrap() {
    let mut f = Small::new();
    let t0 = u64::MAX - 10;
    f.learn(mac(1), 1, 5, AGE, NOLIMIT); // after the wrap: newer
    f.learn(mac(2), 1, t0, AGE, NOLIMIT); // before the wrap: older
    f.learn(mac(3), 1, 6, AGE, NOLIMIT);
    f.learn(mac(4), 1, 7, AGE, NOLIMIT);
    assert_eq!(
        f.learn(mac(5), 1, 8, AGE, NOLIMIT),
        Learn::Evicted {
            mac: mac(2),
            port: 1
        }
    );
}

#[test]
fn static_entries_are_never_evicted_and_a_full_static_table_refuses() {
    let mut f = Small::new();
    for i in 1..=3 {
        f.add_static(mac(i), i, 0).unwrap();
    }
    f.learn(mac(10), 9, 1000, AGE, NOLIMIT);
    // The only dynamic entry goes, even though the static ones are "older".
    assert_eq!(
        f.learn(mac(11), 9, 1001, AGE, NOLIMIT),
        Learn::Evicted {
            mac: mac(10),
            port: 9
        }
    );
    f.add_static(mac(4), 4, 1002).unwrap(); // evicts mac(11)
    assert_eq!(entry(&f, mac(11)), None);
    assert_eq!(f.learn(mac(12), 9, 1003, AGE, NOLIMIT), Learn::Full);
    assert_eq!(f.add_static(mac(13), 5, 1003), Err(FdbError::Full));
    assert_eq!(f.len(), 4);
    assert!(f.iter().all(|e| e.is_static));
}

#[test]
fn static_entry_resists_a_hostile_port() {
    let mut f = Small::new();
    let victim = mac(1);
    f.add_static(victim, 1, 0).unwrap();
    // Port 2 sends frames with port 1's address as source: refused.
    for t in [0, 10, 1_000_000] {
        assert_eq!(
            f.learn(victim, 2, t, AGE, NOLIMIT),
            Learn::Spoofed { owner: 1 }
        );
        assert_eq!(f.lookup(victim, t, AGE), Some(1));
    }
    // Port 1 itself: nothing to learn, still static.
    assert_eq!(f.learn(victim, 1, 5, AGE, NOLIMIT), Learn::Static);
    let e = entry(&f, victim).unwrap();
    assert!(e.is_static);
    assert_eq!(e.port, 1);
    // Nor can it be moved by ageing or by filling the table.
    for i in 0..100 {
        f.learn(mac(100 + i), 2, u64::from(i), AGE, NOLIMIT);
    }
    assert_eq!(f.age(1 << 40, AGE), 3);
    assert_eq!(f.lookup(victim, 1 << 40, AGE), Some(1));
}

#[test]
fn add_static_rules() {
    let mut f = Small::new();
    assert_eq!(f.add_static([0xff; 6], 1, 0), Err(FdbError::BadMac));
    assert_eq!(
        f.add_static([0x01, 0, 0, 0, 0, 0], 1, 0),
        Err(FdbError::BadMac)
    );
    assert_eq!(f.add_static([0; 6], 1, 0), Err(FdbError::BadMac));
    assert!(f.is_empty());
    f.add_static(mac(1), 1, 0).unwrap();
    assert_eq!(f.add_static(mac(1), 1, 9), Ok(()), "idempotent");
    assert_eq!(
        f.add_static(mac(1), 2, 9),
        Err(FdbError::Exists { port: 1 })
    );
    assert_eq!(f.len(), 1);
    // A learned entry (on whatever port) becomes the static one.
    f.learn(mac(2), 3, 0, AGE, NOLIMIT);
    f.add_static(mac(2), 4, 5).unwrap();
    assert_eq!(f.len(), 2);
    let e = entry(&f, mac(2)).unwrap();
    assert_eq!((e.port, e.is_static), (4, true));
    assert_eq!(
        f.learn(mac(2), 3, 6, AGE, NOLIMIT),
        Learn::Spoofed { owner: 4 }
    );
}

#[test]
fn add_static_evicts_the_oldest_dynamic_entry() {
    let mut f = Small::new();
    f.learn(mac(1), 1, 30, AGE, NOLIMIT);
    f.learn(mac(2), 1, 10, AGE, NOLIMIT);
    f.learn(mac(3), 1, 20, AGE, NOLIMIT);
    f.add_static(mac(4), 2, 40).unwrap();
    f.add_static(mac(5), 2, 40).unwrap();
    assert_eq!(f.len(), 4);
    assert_eq!(entry(&f, mac(2)), None);
    assert!(entry(&f, mac(3)).is_some());
}

#[test]
fn per_port_limit() {
    let mut f: Fdb<16, 32> = Fdb::new();
    for i in 0..3 {
        assert_eq!(f.learn(mac(i), 1, 0, AGE, 3), Learn::Added);
    }
    assert_eq!(f.learn(mac(3), 1, 0, AGE, 3), Learn::PortLimit);
    assert_eq!(f.lookup(mac(3), 0, AGE), None);
    // Refreshing at the limit is fine; other ports are unaffected.
    assert_eq!(f.learn(mac(0), 1, 100, AGE, 3), Learn::Refreshed);
    assert_eq!(f.learn(mac(10), 2, 100, AGE, 3), Learn::Added);
    // A move into a port at its limit is refused; the entry stays where it was.
    assert_eq!(f.learn(mac(10), 1, 100, AGE, 3), Learn::PortLimit);
    assert_eq!(f.lookup(mac(10), 100, AGE), Some(2));
    // Static entries do not count.
    f.add_static(mac(20), 2, 100).unwrap();
    assert_eq!(f.learn(mac(11), 2, 100, AGE, 2), Learn::Added);
    assert_eq!(f.learn(mac(12), 2, 100, AGE, 2), Learn::PortLimit);
    // Aged-out entries do not count: mac(1), mac(2) (seen at 0) age out.
    let t = AGE + 1;
    assert_eq!(f.learn(mac(3), 1, t, AGE, 3), Learn::Added);
    assert_eq!(f.learn(mac(4), 1, t, AGE, 3), Learn::Added);
    assert_eq!(f.learn(mac(5), 1, t, AGE, 3), Learn::PortLimit);
    // ... and an aged entry that comes back counts again.
    assert_eq!(f.learn(mac(1), 1, t, AGE, 3), Learn::PortLimit);
    // A limit of 0 learns nothing.
    assert_eq!(f.learn(mac(30), 3, t, AGE, 0), Learn::PortLimit);
}

#[test]
fn per_port_limit_checked_before_full() {
    let mut f = Small::new();
    for i in 1..=4 {
        f.add_static(mac(i), i, 0).unwrap();
    }
    assert_eq!(f.learn(mac(9), 9, 0, AGE, 0), Learn::PortLimit);
    assert_eq!(f.learn(mac(9), 9, 0, AGE, 1), Learn::Full);
}

/// A hostile guest sprays random source MACs: with a per-port limit, the
/// entries of the other ports all survive, in a table of the real size.
#[test]
fn hostile_spray_cannot_flush_other_ports() {
    let mut f = DefaultFdb::new();
    let limit = 32;
    for p in 1..=4u32 {
        f.add_static(mac(p), p, 0).unwrap();
        for i in 0..limit {
            let r = f.learn(mac(p * 1000 + i), p, 0, AGE, limit);
            assert_eq!(r, Learn::Added);
        }
    }
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let mut refused = 0;
    for t in 0..20_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        let m = [b[0], b[1], b[2], b[3], b[4], b[5]];
        match f.learn(m, 66, t / 100, AGE, limit) {
            Learn::Added | Learn::Refreshed => {}
            Learn::PortLimit | Learn::Group | Learn::Zero => refused += 1,
            r => panic!("unexpected {r:?} for {m:x?}"),
        }
        // Even the other ports' MACs as source.
        if t % 97 == 0 {
            let p = u32::try_from(t % 4).unwrap() + 1;
            assert_eq!(
                f.learn(mac(p), 66, t / 100, AGE, limit),
                Learn::Spoofed { owner: p }
            );
        }
    }
    assert!(refused > 19_000);
    for p in 1..=4u32 {
        assert_eq!(f.lookup(mac(p), 200, AGE), Some(p));
        for i in 0..limit {
            assert_eq!(f.lookup(mac(p * 1000 + i), 200, AGE), Some(p));
        }
    }
    let hostile = f.iter().filter(|e| e.port == 66).count();
    assert_eq!(hostile, 32);
}

#[test]
fn remove_port_and_remove() {
    let mut f: Fdb<16, 32> = Fdb::new();
    f.add_static(mac(1), 1, 0).unwrap();
    f.learn(mac(2), 1, 0, AGE, NOLIMIT);
    f.learn(mac(3), 1, 0, AGE, NOLIMIT);
    f.learn(mac(4), 2, 0, AGE, NOLIMIT);
    f.add_static(mac(5), 2, 0).unwrap();
    assert_eq!(f.remove_port(1), 3);
    assert_eq!(f.remove_port(1), 0);
    assert_eq!(f.len(), 2);
    for m in 1..=3 {
        assert_eq!(f.lookup(mac(m), 0, AGE), None);
    }
    assert_eq!(f.lookup(mac(4), 0, AGE), Some(2));
    // The freed MAC can be registered by another port now.
    f.add_static(mac(1), 3, 0).unwrap();
    assert!(f.remove(mac(5)));
    assert!(!f.remove(mac(5)));
    assert!(!f.remove([0; 6]));
    assert_eq!(f.lookup(mac(5), 0, AGE), None);
    assert_eq!(f.len(), 2);
}

#[test]
fn iter_lists_every_entry() {
    let mut f: Fdb<16, 32> = Fdb::new();
    f.add_static(mac(1), 1, 7).unwrap();
    f.learn(mac(2), 2, 8, AGE, NOLIMIT);
    let mut v: Vec<FdbEntry> = f.iter().copied().collect();
    v.sort_by_key(|e| e.mac);
    assert_eq!(
        v,
        [
            FdbEntry {
                mac: mac(1),
                port: 1,
                seen: 7,
                is_static: true
            },
            FdbEntry {
                mac: mac(2),
                port: 2,
                seen: 8,
                is_static: false
            },
        ]
    );
}

/// Many MACs in a small table: collisions, wrapping clusters, deletions in
/// the middle of clusters.
#[test]
fn dense_table_stays_consistent() {
    let mut f: Fdb<7, 8> = Fdb::new();
    for round in 0..50u32 {
        for i in 0..7 {
            f.learn(mac(round * 7 + i), i, u64::from(round), 0, NOLIMIT);
        }
        assert_eq!(f.len(), 7);
        for i in 0..7 {
            assert_eq!(f.lookup(mac(round * 7 + i), u64::from(round), 0), Some(i));
        }
        assert_eq!(f.remove_port(round % 7), 1);
        assert_eq!(f.age(u64::from(round) + 1, 0), 6);
        assert!(f.is_empty());
    }
}

/// Review F6: with the switch's real limits (64 guests and the host port,
/// 16 learned MACs each), colluding guests spraying fresh source MACs must
/// not evict what the host port learned (the LAN behind `pvpsw0`), nor any
/// other port's live entry.
#[test]
fn colluding_ports_flush_learned_entries_with_the_real_limits() {
    const HOST: u32 = 0;
    const AGE: u64 = 300 * 1000; // 300 s in jiffies at HZ=1000
    let limit = MAX_LEARNED_PER_PORT;
    let ports = u32::try_from(MAX_PORTS).unwrap();
    let mut f = DefaultFdb::new();
    for p in 0..ports {
        f.add_static(mac(p), p, 0).unwrap();
    }
    // The host port learned the stations of its LAN.
    let lan: Vec<Mac> = (0..limit).map(|i| mac(0x00ff_0000 + i)).collect();
    for &m in &lan {
        assert_eq!(f.learn(m, HOST, 1, AGE, limit), Learn::Added);
    }
    // Every guest sends from 4 x its limit of fresh source MACs, round after
    // round, and refreshes them: they keep their entries live.
    let mut t = 2;
    for round in 0..4u32 {
        for p in 1..ports {
            for i in 0..4 * limit {
                let m = mac(0x0100_0000 * (round + 1) + p * 256 + i);
                t += 1;
                let r = f.learn(m, p, t, AGE, limit);
                match r {
                    Learn::Added | Learn::PortLimit => {}
                    Learn::Evicted { port, .. } => {
                        assert_eq!(port, p, "port {p} evicted port {port}'s live entry")
                    }
                    r => panic!("port {p}: unexpected {r:?}"),
                }
            }
        }
    }
    for &m in &lan {
        assert_eq!(f.lookup(m, t, AGE), Some(HOST), "{m:x?} lost");
    }
    for p in 0..ports {
        assert_eq!(f.lookup(mac(p), t, AGE), Some(p));
        let live = f
            .iter()
            .filter(|e| !e.is_static && e.port == p && elapsed(e.seen, t) <= AGE)
            .count();
        assert_eq!(live, 16, "port {p}");
    }
}

/// In a table too small for everyone, a port's learning never evicts
/// another port's live entry: it takes an aged-out entry or its own
/// oldest one, or is refused.
#[test]
fn learning_never_evicts_another_ports_live_entry() {
    let mut f = Small::new();
    assert_eq!(f.learn(mac(1), 1, 10, AGE, NOLIMIT), Learn::Added);
    assert_eq!(f.learn(mac(2), 1, 20, AGE, NOLIMIT), Learn::Added);
    assert_eq!(f.learn(mac(3), 2, 30, AGE, NOLIMIT), Learn::Added);
    assert_eq!(f.learn(mac(4), 2, 40, AGE, NOLIMIT), Learn::Added);
    // Full of ports 1 and 2: port 3 is refused, whatever it sends.
    for i in 0..50 {
        assert_eq!(
            f.learn(mac(100 + i), 3, 50 + u64::from(i), AGE, NOLIMIT),
            Learn::Full
        );
    }
    for (m, p) in [(1, 1), (2, 1), (3, 2), (4, 2)] {
        assert_eq!(f.lookup(mac(m), 100, AGE), Some(p));
    }
    // Port 2 may replace its own oldest entry (mac 3), not port 1's older one.
    assert_eq!(
        f.learn(mac(5), 2, 100, AGE, NOLIMIT),
        Learn::Evicted {
            mac: mac(3),
            port: 2
        }
    );
    assert_eq!(f.lookup(mac(1), 100, AGE), Some(1));
    // Once port 1's entries have aged out, port 3 takes their place: not an
    // eviction, nothing live was lost.
    let t = 20 + AGE + 1;
    assert_eq!(f.learn(mac(6), 3, t, AGE, NOLIMIT), Learn::Added);
    assert_eq!(entry(&f, mac(1)), None);
    assert_eq!(
        f.learn(mac(7), 3, t, AGE, NOLIMIT),
        Learn::Added,
        "mac 2 aged too"
    );
    assert_eq!(
        f.learn(mac(8), 3, t, AGE, NOLIMIT),
        Learn::Evicted {
            mac: mac(6),
            port: 3
        }
    );
    assert_eq!(f.lookup(mac(4), t, AGE), Some(2));
    assert_eq!(f.lookup(mac(5), t, AGE), Some(2));
    // A station moving between ports is not an eviction: still allowed.
    assert_eq!(
        f.learn(mac(4), 3, t, AGE, NOLIMIT),
        Learn::Moved { from: 2 }
    );
    assert_eq!(f.len(), 4);
}
