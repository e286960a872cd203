//! `heapscope flash`: write an image to an ESP32 through espflash (as a library).

use std::io::{IsTerminal, Write};

use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::{FlashData, FlashSettings, Flasher};
use espflash::image_format::idf::IdfBootloaderFormat;
use espflash::image_format::ImageFormat;
use espflash::target::{Chip, ProgressCallbacks};
use serde::Serialize;
use serialport::UsbPortInfo;

use crate::cli::FlashArgs;
use crate::exit::{file_error, CliError};
use crate::human::{count, thousands};
use crate::port;

/// What the image file is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum Image {
    /// A flash image (`firmware.bin`), starting with an ESP image, checked as the ROM
    /// bootloader reads it.
    Bin(BinImage),
    /// An ESP-IDF application ELF: espflash adds a bootloader and partition table.
    Elf { architecture: &'static str },
}

/// What the header and segments of an ESP image say, once checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BinImage {
    /// espflash's name for the chip in the header (`esp32`, `esp32c61`, ...).
    pub chip: Chip,
    pub segments: usize,
    /// Bytes of the first image (header, segments, checksum, digest); a merged
    /// `firmware.bin` has more behind it (partition table, application).
    pub image_bytes: usize,
    /// The oldest chip revision the image runs on, as `major * 100 + minor`.
    pub min_chip_revision: u16,
    /// The flash size the header declares, if it is a known code.
    pub flash_size: Option<u32>,
    /// A SHA-256 digest follows the checksum, and it matches.
    pub digest: bool,
}

/// ESP_IMAGE_MAX_SEGMENTS in ESP-IDF's esp_image_format.h.
const MAX_SEGMENTS: usize = 16;
const HEADER_LEN: usize = 24;
const CHECKSUM_SEED: u8 = 0xEF;

fn bad(name: &str, what: String) -> CliError {
    CliError::BadInput(format!("{name}: {what}"))
}

/// Checks an ESP image as the ROM bootloader and espflash read it: the header, the chip it
/// names (espflash's own table), every segment within the file, the checksum and the digest.
pub fn check_bin(name: &str, data: &[u8]) -> Result<BinImage, CliError> {
    if data.len() < HEADER_LEN {
        return Err(bad(name, format!("only {} bytes: a truncated ESP image", data.len())));
    }
    let u16_at = |i: usize| u16::from_le_bytes([data[i], data[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    let chip_id = u16_at(12);
    let chip = Chip::try_from(chip_id).map_err(|_| {
        bad(name, format!("unknown chip id {chip_id} at byte 12 of the image header (not one espflash knows): not an image for an ESP32"))
    })?;
    let segments = usize::from(data[1]);
    if segments == 0 || segments > MAX_SEGMENTS {
        return Err(bad(name, format!("{} in the header (byte 1): an ESP image has 1 to {MAX_SEGMENTS}", count(segments, "segment"))));
    }
    let mut checksum = CHECKSUM_SEED;
    let mut at = HEADER_LEN;
    for i in 0..segments {
        if at + 8 > data.len() {
            return Err(bad(name, format!("segment {} of {segments} starts at byte {at}, past the end of the file", i + 1)));
        }
        let (load, len) = (u32_at(at), u32_at(at + 4) as usize);
        let end = at + 8 + len;
        if end > data.len() {
            return Err(bad(
                name,
                format!("segment {} of {segments} (byte {at}, load address {load:#x}) claims {} bytes, past the end of the file", i + 1, thousands(len as u64)),
            ));
        }
        checksum = data[at + 8..end].iter().fold(checksum, |c, b| c ^ b);
        at = end;
    }
    // The checksum byte ends a 16-byte row.
    let checksum_at = at | 15;
    let Some(&stored) = data.get(checksum_at) else {
        return Err(bad(name, format!("the file ends before the checksum at byte {checksum_at}")));
    };
    if stored != checksum {
        return Err(bad(name, format!("checksum mismatch at byte {checksum_at}: the image says {stored:#04x}, its segments give {checksum:#04x}")));
    }
    let mut image_bytes = checksum_at + 1;
    let digest = data[23] == 1;
    if digest {
        use sha2::Digest;
        let Some(stored) = data.get(image_bytes..image_bytes + 32) else {
            return Err(bad(name, format!("the file ends before the SHA-256 digest at byte {image_bytes}")));
        };
        if sha2::Sha256::digest(&data[..image_bytes]).as_slice() != stored {
            return Err(bad(name, format!("SHA-256 digest mismatch at byte {image_bytes}: the image is damaged")));
        }
        image_bytes += 32;
    }
    // esp_image_flash_size_t: 1 MB << code, up to 256 MB.
    let size_code = data[3] >> 4;
    let flash_size = (size_code <= 8).then(|| (1u32 << 20) << size_code);
    Ok(BinImage { chip, segments, image_bytes, min_chip_revision: u16_at(15), flash_size, digest })
}

pub fn identify(name: &str, data: &[u8]) -> Result<Image, CliError> {
    if data.starts_with(b"\x7fELF") {
        if data.len() < 20 || data[4] != 1 {
            return Err(CliError::BadInput(format!("{name}: a 64-bit or truncated ELF; ESP32 images are 32-bit")));
        }
        let machine = u16::from_le_bytes([data[18], data[19]]);
        let architecture = match machine {
            94 => "xtensa",
            243 => "riscv32",
            other => return Err(CliError::BadInput(format!("{name}: an ELF for machine {other}, not Xtensa or RISC-V: not ESP32 firmware"))),
        };
        return Ok(Image::Elf { architecture });
    }
    match data.first() {
        Some(0xE9) => Ok(Image::Bin(check_bin(name, data)?)),
        Some(b) => Err(CliError::BadInput(format!(
            "{name}: not an ESP image (first byte {b:#04x}; images start with 0xe9, ELF files with 0x7f ELF). Is this the build's firmware.bin?"
        ))),
        None => Err(CliError::BadInput(format!("{name}: empty file"))),
    }
}

/// Refuses what the board in hand cannot run: another chip, an older revision, less flash.
fn check_against_board(name: &str, image: &BinImage, flasher: &mut Flasher, end: u64) -> Result<(), CliError> {
    let chip = flasher.chip();
    if chip != image.chip {
        return Err(CliError::BadInput(format!("{name} is for {}, but the board is {chip}: nothing was written", image.chip)));
    }
    if image.min_chip_revision > 0 {
        flasher
            .verify_minimum_revision(image.min_chip_revision)
            .map_err(|e| CliError::BadInput(format!("{name}: {e}: nothing was written")))?;
    }
    if let Ok(Some(size)) = flasher.flash_detect() {
        let size = u64::from(size.size());
        if end > size {
            return Err(CliError::BadInput(format!(
                "{name} ends at {end:#x}, but the board has {} MB of flash: nothing was written",
                size >> 20
            )));
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct Plan {
    image: String,
    bytes: usize,
    #[serde(flatten)]
    kind: Image,
    /// Where a `.bin` is written (`0x` hex).
    address: Option<String>,
    port: Option<String>,
    dry_run: bool,
    steps: Vec<String>,
}

struct Progress {
    total: usize,
    addr: u32,
    tty: bool,
}

impl ProgressCallbacks for Progress {
    fn init(&mut self, addr: u32, total: usize) {
        self.addr = addr;
        self.total = total.max(1);
    }

    fn update(&mut self, current: usize) {
        if self.tty {
            let pct = 100 * current / self.total;
            let bar = "#".repeat(pct / 4);
            eprint!("\r  writing at {:#07x}  [{bar:<25}] {pct:3}%", self.addr);
            let _ = std::io::stderr().flush();
        }
    }

    fn verifying(&mut self) {
        if self.tty {
            eprint!("\r\x1b[2K  verifying");
        }
    }

    fn finish(&mut self, skipped: bool) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("  {:#07x}: {}", self.addr, if skipped { "already there, skipped" } else { "written" });
    }
}

fn espflash_error(e: espflash::Error) -> CliError {
    CliError::Io(format!("flashing failed: {e}"))
}

pub fn run(args: &FlashArgs) -> Result<(), CliError> {
    let name = args.image.display().to_string();
    let data = std::fs::read(&args.image).map_err(|e| file_error(&args.image, e))?;
    let kind = identify(&name, &data)?;
    let address = match (&kind, args.address) {
        (Image::Elf { .. }, Some(_)) => return Err(CliError::BadInput("--address is for .bin images; an ELF says where it goes".into())),
        (Image::Elf { .. }, None) => None,
        (_, Some(a)) => Some(a),
        // A firmware.bin starts with the bootloader: where the chip's ROM looks for it.
        (Image::Bin(bin), None) => Some(bin.chip.boot_address()),
    };
    if let (Image::Bin(bin), Some(a)) = (&kind, address) {
        let end = u64::from(a) + data.len() as u64;
        if let Some(size) = bin.flash_size.filter(|&size| end > u64::from(size)) {
            return Err(CliError::BadInput(format!(
                "{name}: written at {a:#x} it ends at {end:#x}, past the {} MB of flash its header declares",
                size >> 20
            )));
        }
    }
    let port_path = if args.dry_run { None } else { Some(port::resolve(&args.device.port)?) };
    let mut steps = vec!["connect to the ROM bootloader (resets the board into download mode)".to_string()];
    steps.push(match (&kind, address) {
        (Image::Bin(_), Some(a)) => format!("write {} bytes at {a:#x}, verify", thousands(data.len() as u64)),
        _ => "add the ESP-IDF bootloader and partition table, write the application, verify".into(),
    });
    steps.push("reset the board to run the new firmware".into());
    let plan = Plan {
        image: name.clone(),
        bytes: data.len(),
        kind: kind.clone(),
        address: address.map(|a| format!("{a:#x}")),
        port: port_path.clone(),
        dry_run: args.dry_run,
        steps,
    };
    if args.json && args.dry_run {
        crate::outln!("{}", serde_json::to_string_pretty(&plan).expect("plan serialises"))?;
        return Ok(());
    }
    if args.dry_run || !args.json {
        let what = match &plan.kind {
            Image::Bin(bin) => format!(
                "flash image for {} (revision {}.{} or later), {}, checksum{} good",
                bin.chip,
                bin.min_chip_revision / 100,
                bin.min_chip_revision % 100,
                count(bin.segments, "segment"),
                if bin.digest { " and SHA-256 digest" } else { "" }
            ),
            Image::Elf { architecture } => format!("ESP-IDF application ELF ({architecture})"),
        };
        eprintln!("{name}: {} bytes, {what}", thousands(data.len() as u64));
        for (i, s) in plan.steps.iter().enumerate() {
            eprintln!("  {}. {s}", i + 1);
        }
        if args.dry_run {
            eprintln!("dry run: no port was opened");
            return Ok(());
        }
    }
    let path = port_path.expect("resolved above");
    let serial = serialport::new(&path, 115_200).open_native().map_err(|e| port::classify_open_error(&path, e))?;
    let usb = port::info(&path)
        .and_then(|p| Some((u16::from_str_radix(p.vid.as_deref()?, 16).ok()?, u16::from_str_radix(p.pid.as_deref()?, 16).ok()?)));
    let port_info = UsbPortInfo {
        vid: usb.map_or(0, |u| u.0),
        pid: usb.map_or(0, |u| u.1),
        serial_number: None,
        manufacturer: None,
        product: None,
    };
    let connection = Connection::new(serial, port_info, ResetAfterOperation::HardReset, ResetBeforeOperation::DefaultReset, 115_200);
    let mut flasher = Flasher::connect(connection, true, true, true, None, Some(460_800)).map_err(espflash_error)?;
    let chip = flasher.chip();
    eprintln!("connected to {chip} on {path}");
    if let (Image::Bin(bin), Some(a)) = (&kind, address) {
        check_against_board(&name, bin, &mut flasher, u64::from(a) + data.len() as u64)?;
    }
    let mut progress = Progress { total: 1, addr: 0, tty: std::io::stderr().is_terminal() };
    match kind {
        Image::Bin(_) => flasher.write_bin_to_flash(address.expect("bin has an address"), &data, &mut progress).map_err(espflash_error)?,
        Image::Elf { .. } => {
            let flash_data = FlashData::new(FlashSettings::default(), 0, None, chip, chip.default_xtal_frequency());
            let format = IdfBootloaderFormat::new(&data, &flash_data, None, None, None, None).map_err(espflash_error)?;
            flasher.load_image_to_flash(&mut progress, ImageFormat::EspIdf(format)).map_err(espflash_error)?;
        }
    }
    flasher.connection().reset_after(true, chip).map_err(espflash_error)?;
    if args.json {
        crate::outln!("{}", serde_json::to_string_pretty(&plan).expect("plan serialises"))?;
    } else {
        eprintln!("done: {chip} reset and running the new firmware. `heapscope record` or `heapscope attach` next");
    }
    Ok(())
}

/// A well-formed ESP image for `chip_id` with `segments` of `len` bytes each: for tests.
#[doc(hidden)]
pub fn sample_image(chip_id: u16, segments: u8, len: usize, min_revision: u16, digest: bool) -> Vec<u8> {
    use sha2::Digest;
    let mut out = vec![0u8; HEADER_LEN];
    out[0] = 0xE9;
    out[1] = segments;
    out[3] = 0x20; // 4 MB
    out[12..14].copy_from_slice(&chip_id.to_le_bytes());
    out[15..17].copy_from_slice(&min_revision.to_le_bytes());
    out[23] = u8::from(digest);
    let mut checksum = CHECKSUM_SEED;
    for i in 0..segments {
        out.extend(0x4008_0000u32.to_le_bytes());
        out.extend((len as u32).to_le_bytes());
        let body: Vec<u8> = (0..len).map(|j| (j as u8).wrapping_mul(31).wrapping_add(i)).collect();
        checksum = body.iter().fold(checksum, |c, b| c ^ b);
        out.extend(body);
    }
    out.resize(out.len() | 15, 0);
    out.push(checksum);
    if digest {
        let d = sha2::Sha256::digest(&out);
        out.extend_from_slice(&d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_image_is_checked_like_espflash_reads_it() {
        let img = sample_image(0, 3, 100, 300, true);
        let Image::Bin(bin) = identify("x", &img).unwrap() else { panic!() };
        assert_eq!((bin.chip, bin.segments, bin.min_chip_revision, bin.digest), (Chip::Esp32, 3, 300, true));
        assert_eq!(bin.image_bytes, img.len());
        assert_eq!(bin.flash_size, Some(4 << 20));
        // espflash's own table: chips the copied one missed.
        for (id, chip) in [(20, Chip::Esp32c61), (28, Chip::Esp32h4), (32, Chip::Esp32s31), (9, Chip::Esp32s3)] {
            let Image::Bin(bin) = identify("x", &sample_image(id, 1, 16, 0, false)).unwrap() else { panic!() };
            assert_eq!(bin.chip, chip);
        }
        assert_eq!(Chip::Esp32s3.boot_address(), 0);
        assert_eq!(Chip::Esp32.boot_address(), 0x1000);
    }

    #[test]
    fn a_damaged_image_is_refused_naming_where() {
        let err = |data: &[u8]| identify("fw.bin", data).unwrap_err().to_string();
        // Random bytes behind a plausible header.
        let mut junk = sample_image(0, 1, 16, 0, false)[..HEADER_LEN].to_vec();
        junk[1] = 4;
        junk.extend((0..900_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let e = err(&junk);
        assert!(e.contains("fw.bin") && (e.contains("past the end") || e.contains("checksum")), "{e}");
        // A flipped byte in a segment.
        let mut flipped = sample_image(0, 2, 64, 0, false);
        flipped[HEADER_LEN + 8 + 5] ^= 1;
        assert!(err(&flipped).contains("checksum mismatch at byte"), "{}", err(&flipped));
        // A flipped digest.
        let mut digest = sample_image(0, 2, 64, 0, true);
        let last = digest.len() - 1;
        digest[last] ^= 1;
        assert!(err(&digest).contains("SHA-256 digest mismatch"), "{}", err(&digest));
        // An unknown chip, zero or too many segments, a cut file.
        assert!(err(&sample_image(77, 1, 16, 0, false)).contains("unknown chip id 77"));
        assert!(err(&sample_image(0, 0, 16, 0, false)).contains("0 segments"));
        assert!(err(&sample_image(0, 17, 16, 0, false)).contains("17 segments"));
        let cut = sample_image(0, 2, 64, 0, false);
        assert!(err(&cut[..60]).contains("past the end"), "{}", err(&cut[..60]));
        assert!(err(&cut[..10]).contains("truncated"));
    }

    #[test]
    fn other_files_are_identified() {
        let mut elf = b"\x7fELF\x01".to_vec();
        elf.resize(20, 0);
        elf[18] = 94;
        assert_eq!(identify("x", &elf).unwrap(), Image::Elf { architecture: "xtensa" });
        let err = identify("notes.txt", b"hello").unwrap_err();
        assert!(err.to_string().contains("not an ESP image"), "{err}");
    }
}
