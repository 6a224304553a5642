//! Times the phases of chunking a file: FastCDC alone (in memory, then reading the
//! file), + BLAKE3, + chunk store writes, and an in-place publish's chunking.
//! `cargo run --release -p mesh-storage --example chunk_phases -- FILE`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use mesh_storage::chunker::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};

fn main() {
    let path = std::env::args().nth(1).expect("usage: chunk_phases FILE");
    // `CHUNK_PHASES=store` times only the copying chunking, `in_place` only the
    // in-place one, 5 times (for `perf record`).
    match std::env::var("CHUNK_PHASES").as_deref() {
        Ok("store") => {
            let dir = tempfile::tempdir().unwrap();
            copying(&path, dir.path());
            return;
        }
        Ok("in_place") => {
            let dir = tempfile::tempdir().unwrap();
            for k in 0..5 {
                in_place(&path, &dir.path().join(format!("in-place-{k}")));
            }
            return;
        }
        _ => {}
    }
    let data = std::fs::read(&path).unwrap();
    let t = Instant::now();
    let n = fastcdc::v2020::FastCDC::new(&data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).count();
    println!("fastcdc in memory:   {:?} ({n} chunks)", t.elapsed());
    drop(data);
    let t = Instant::now();
    let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).unwrap());
    let n = fastcdc::v2020::StreamCDC::new(f, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK).count();
    println!("fastcdc only:        {:?} ({n} chunks)", t.elapsed());

    let t = Instant::now();
    let f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).unwrap());
    for c in fastcdc::v2020::StreamCDC::new(f, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK) {
        std::hint::black_box(blake3::hash(&c.unwrap().data));
    }
    println!("fastcdc + blake3:    {:?}", t.elapsed());

    let dir = tempfile::tempdir().unwrap();
    let store = copying(&path, dir.path());
    let t = Instant::now();
    store.sync().unwrap();
    println!("sync:                {:?}", t.elapsed());

    in_place(&path, &dir.path().join("in-place"));
}

/// Chunks `path` in place into a new store at `dir`, timed.
fn in_place(path: &str, dir: &std::path::Path) {
    let placed = mesh_storage::ChunkStore::open(dir).unwrap();
    timed_with_cpu("chunk_file_in_place:", || {
        mesh_storage::chunker::chunk_file_in_place(
            std::path::Path::new(path),
            &placed,
            &mut Vec::new(),
        )
        .unwrap();
    });
}

/// Chunks `path` into a new store under `dir` (copying into packs), timed.
fn copying(path: &str, dir: &std::path::Path) -> mesh_storage::ChunkStore {
    let store = mesh_storage::ChunkStore::open(dir).unwrap();
    timed_with_cpu("chunk_file (store):", || {
        mesh_storage::chunker::chunk_file(std::path::Path::new(path), &store).unwrap();
    });
    store
}

/// Runs `f` and prints `label` with the wall time and the CPU time it took.
fn timed_with_cpu(label: &str, f: impl FnOnce()) {
    let (t, cpu) = (Instant::now(), cpu_time());
    f();
    println!(
        "{label:<21}{:?} (cpu {:.2} s)",
        t.elapsed(),
        cpu_time() - cpu
    );
}

/// User and system CPU seconds this process has used so far, all threads.
fn cpu_time() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}
