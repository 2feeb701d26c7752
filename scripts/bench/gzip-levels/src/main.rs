//! `gzip-levels BODY_FILE`: for levels 1, 2, 3 and 6, the compressed size and the CPU time per
//! body of a new `GzEncoder` per body and of one reused `Compress` (what the agent does),
//! as lines `level=L bytes=B fresh_us=F reused_us=R` (CPU time of the process).
use std::io::Write;

fn cpu() -> f64 {
    let mut ts = libc_timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    unsafe { clock_gettime(2, &mut ts) }; // CLOCK_PROCESS_CPUTIME_ID
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[repr(C)]
struct libc_timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
extern "C" {
    fn clock_gettime(clock: i32, ts: *mut libc_timespec) -> i32;
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: gzip-levels BODY_FILE");
    let body = std::fs::read(&path).expect("read the body");
    let n = 1000;
    for level in [1u32, 2, 3, 6] {
        let t = cpu();
        let mut size = 0;
        for _ in 0..n {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 4),
                flate2::Compression::new(level),
            );
            e.write_all(&body).expect("compress");
            size = e.finish().expect("finish").len();
        }
        let fresh = (cpu() - t) / n as f64;
        let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
        let mut out = Vec::with_capacity(body.len() + 1024);
        let t = cpu();
        for _ in 0..n {
            c.reset();
            out.clear();
            c.compress_vec(&body, &mut out, flate2::FlushCompress::Finish)
                .expect("compress");
        }
        let reused = (cpu() - t) / n as f64;
        println!(
            "level={level} bytes={size} fresh_us={:.0} reused_us={:.0}",
            fresh * 1e6,
            reused * 1e6
        );
    }
}
