//! A QEMU with an emulated igb (82576) and no guest OS, driven over the qtest
//! protocol: the test is the NIC's driver.
//!
//! QEMU runs `-machine q35` under TCG with a 64 KiB BIOS of `HLT`s, so the
//! vCPU halts at reset and no firmware touches the device (Debian's QEMU has
//! no qtest accelerator; the virtual clock runs in real time, which only
//! matters for the PHY's 500 ms autonegotiation). The test talks qtest over a
//! Unix socket QEMU connects to (`-qtest unix:`), and owns the other end of
//! the NIC's wire: a `-netdev stream` QEMU connects to, frames framed by a
//! 4-byte big-endian length.
//!
//! Included with `#[path = "common/qtest.rs"]` by the igb tests.
#![allow(dead_code)]

use pvpass_core::igb::ring::DescMem;
use pvpass_core::igb::Regs;
use pvpass_core::traits::Fence;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where BAR0 is placed (inside q35's 32-bit PCI hole).
pub const BAR0: u64 = 0xe000_0000;
/// The igb's PCI slot (00:04.0).
pub const SLOT: u32 = 4;
/// Guest RAM given to QEMU.
pub const RAM_MB: u32 = 64;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running QEMU with an igb, its qtest channel and the NIC's wire.
pub struct Qemu {
    child: Child,
    dir: PathBuf,
    rd: BufReader<UnixStream>,
    wr: UnixStream,
    /// The wire: frames the NIC sends arrive here, frames written here
    /// arrive at the NIC.
    pub wire: UnixStream,
    /// qtest commands sent (for the timing report).
    pub commands: u64,
}

fn qemu_binary() -> String {
    std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".to_string())
}

fn accept(l: &UnixListener, what: &str, child: &mut Child, dir: &Path) -> UnixStream {
    l.set_nonblocking(true).expect("nonblocking listener");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking stream");
                return s;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept {what}: {e}"),
        }
        if let Ok(Some(st)) = child.try_wait() {
            let err = std::fs::read_to_string(dir.join("qemu.err")).unwrap_or_default();
            panic!("QEMU exited ({st}) before connecting its {what}:\n{err}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("QEMU did not connect its {what} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Qemu {
    /// Starts QEMU with `-device igb,<mac>`; fails the test (never skips) if
    /// QEMU cannot be run.
    pub fn start(mac: [u8; 6]) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pvpass-igb-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bios = dir.join("hlt.bin");
        std::fs::write(&bios, vec![0xf4u8; 65536]).expect("bios");
        let qsock = dir.join("qtest.sock");
        let nsock = dir.join("net.sock");
        let ql = UnixListener::bind(&qsock).expect("bind qtest socket");
        let nl = UnixListener::bind(&nsock).expect("bind net socket");
        let err = std::fs::File::create(dir.join("qemu.err")).expect("stderr file");
        let macs = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let qemu = qemu_binary();
        let mut child = Command::new(&qemu)
            .args(["-machine", "q35", "-accel", "tcg", "-nodefaults"])
            .args(["-display", "none", "-m", &RAM_MB.to_string()])
            .arg("-bios")
            .arg(&bios)
            .arg("-qtest")
            .arg(format!("unix:{}", qsock.display()))
            .args(["-qtest-log", "/dev/null"])
            .arg("-netdev")
            .arg(format!(
                "stream,id=n0,server=off,addr.type=unix,addr.path={}",
                nsock.display()
            ))
            .arg("-device")
            .arg(format!("igb,netdev=n0,addr={SLOT:#x},mac={macs},romfile="))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                panic!(
                    "cannot run {qemu} ({e}): the igb tests need QEMU's x86 system emulator \
                     (Debian: apt-get install qemu-system-x86, which the project's setup installs)"
                )
            });
        let wire = accept(&nl, "netdev stream", &mut child, &dir);
        let q = accept(&ql, "qtest socket", &mut child, &dir);
        q.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        wire.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let wr = q.try_clone().expect("clone");
        Self {
            child,
            dir,
            rd: BufReader::new(q),
            wr,
            wire,
            commands: 0,
        }
    }

    /// Sends one qtest command and returns its `OK` line's argument.
    pub fn cmd(&mut self, line: &str) -> String {
        self.commands += 1;
        self.wr
            .write_all(format!("{line}\n").as_bytes())
            .expect("qtest write");
        loop {
            let mut r = String::new();
            let n = self.rd.read_line(&mut r).expect("qtest read");
            assert!(n > 0, "qtest: QEMU closed the connection after {line:?}");
            let r = r.trim_end();
            if r.starts_with("IRQ") {
                continue;
            }
            match r.strip_prefix("OK") {
                Some(rest) => return rest.trim().to_string(),
                None => panic!("qtest: {line:?} -> {r:?}"),
            }
        }
    }

    fn hex(s: &str) -> u64 {
        u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("qtest hex")
    }

    /// 32-bit write to guest physical memory / MMIO.
    pub fn writel(&mut self, addr: u64, v: u32) {
        self.cmd(&format!("writel {addr:#x} {v:#x}"));
    }

    /// 32-bit read.
    pub fn readl(&mut self, addr: u64) -> u32 {
        let r = self.cmd(&format!("readl {addr:#x}"));
        Self::hex(&r) as u32
    }

    /// Port I/O.
    pub fn outl(&mut self, port: u16, v: u32) {
        self.cmd(&format!("outl {port:#x} {v:#x}"));
    }

    /// Port I/O.
    pub fn inl(&mut self, port: u16) -> u32 {
        let r = self.cmd(&format!("inl {port:#x}"));
        Self::hex(&r) as u32
    }

    /// Writes bytes into guest RAM.
    pub fn write_mem(&mut self, addr: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        self.cmd(&format!("write {addr:#x} {} 0x{hex}", data.len()));
    }

    /// Reads bytes from guest RAM.
    pub fn read_mem(&mut self, addr: u64, len: usize) -> Vec<u8> {
        let r = self.cmd(&format!("read {addr:#x} {len}"));
        let h = r.trim_start_matches("0x");
        (0..len)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("qtest hex"))
            .collect()
    }

    /// Fills guest RAM.
    pub fn memset(&mut self, addr: u64, len: usize, v: u8) {
        self.cmd(&format!("memset {addr:#x} {len} {v:#x}"));
    }

    fn cfg_addr(reg: u32) -> u32 {
        0x8000_0000 | (SLOT << 11) | (reg & 0xfc)
    }

    /// PCI config space write of the igb (mechanism #1).
    pub fn cfg_write(&mut self, reg: u32, v: u32) {
        self.outl(0xcf8, Self::cfg_addr(reg));
        self.outl(0xcfc, v);
    }

    /// PCI config space read of the igb.
    pub fn cfg_read(&mut self, reg: u32) -> u32 {
        self.outl(0xcf8, Self::cfg_addr(reg));
        self.inl(0xcfc)
    }

    /// Places BAR0 and turns on memory decoding and bus mastering (no
    /// firmware ran, so nobody else did).
    pub fn pci_setup(&mut self) -> u32 {
        let id = self.cfg_read(0);
        self.cfg_write(0x10, BAR0 as u32);
        self.cfg_write(0x04, 0x6);
        id
    }

    /// Sends one frame into the NIC.
    pub fn inject(&mut self, frame: &[u8]) {
        let mut b = (frame.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(frame);
        self.wire.write_all(&b).expect("wire write");
    }

    /// The next frame the NIC sent, waiting up to `timeout`.
    pub fn wire_recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        self.wire
            .set_read_timeout(Some(timeout))
            .expect("wire timeout");
        let mut len = [0u8; 4];
        match self.wire.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(e) => panic!("wire read: {e}"),
        }
        let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
        self.wire.read_exact(&mut f).expect("wire frame");
        Some(f)
    }

    /// QEMU's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("qemu.err")).unwrap_or_default()
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The NIC's registers through qtest (BAR0 MMIO).
impl Regs for Qemu {
    fn read32(&mut self, off: u32) -> u32 {
        self.readl(BAR0 + u64::from(off))
    }

    fn write32(&mut self, off: u32, val: u32) {
        self.writel(BAR0 + u64::from(off), val);
    }

    fn delay_us(&mut self, us: u32) {
        std::thread::sleep(Duration::from_micros(u64::from(us)));
    }
}

/// A descriptor ring in guest RAM.
pub struct RingMem<'a> {
    pub qemu: &'a mut Qemu,
    pub base: u64,
}

impl DescMem for RingMem<'_> {
    fn read(&mut self, i: u16) -> [u8; 16] {
        let v = self.qemu.read_mem(self.base + 16 * u64::from(i), 16);
        v.try_into().expect("16 bytes")
    }

    fn write(&mut self, i: u16, d: &[u8; 16]) {
        self.qemu.write_mem(self.base + 16 * u64::from(i), d);
    }

    fn fence(&mut self, _kind: Fence) {
        // qtest accesses are serialised by QEMU's main loop.
    }
}
