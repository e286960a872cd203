//! `heapscope flash`: write an image to an ESP32 through espflash (as a library).

use std::io::{IsTerminal, Write};

use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::{FlashData, FlashSettings, Flasher};
use espflash::image_format::idf::IdfBootloaderFormat;
use espflash::image_format::ImageFormat;
use espflash::target::ProgressCallbacks;
use serde::Serialize;
use serialport::UsbPortInfo;

use crate::cli::FlashArgs;
use crate::exit::{file_error, CliError};
use crate::human::thousands;
use crate::port;

/// What the image file is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum Image {
    /// A flash image (`firmware.bin`), starting with an ESP image header.
    Bin { chip: Option<&'static str>, chip_id: u16 },
    /// An ESP-IDF application ELF: espflash adds a bootloader and partition table.
    Elf { architecture: &'static str },
}

/// ESP image header chip ids (esp_image_format.h).
fn chip_name(id: u16) -> Option<&'static str> {
    Some(match id {
        0 => "ESP32",
        2 => "ESP32-S2",
        5 => "ESP32-C3",
        9 => "ESP32-S3",
        12 => "ESP32-C2",
        13 => "ESP32-C6",
        16 => "ESP32-H2",
        18 => "ESP32-P4",
        23 => "ESP32-C5",
        _ => return None,
    })
}

/// Where a MicroPython `firmware.bin` for that chip goes: after the ROM's reserved area.
fn default_address(chip: &str) -> u32 {
    match chip {
        "ESP32" | "ESP32-S2" => 0x1000,
        "ESP32-P4" | "ESP32-C5" => 0x2000,
        _ => 0x0,
    }
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
        Some(0xE9) if data.len() >= 24 => {
            let chip_id = u16::from_le_bytes([data[12], data[13]]);
            Ok(Image::Bin { chip: chip_name(chip_id), chip_id })
        }
        Some(0xE9) => Err(CliError::BadInput(format!("{name}: only {} bytes: a truncated ESP image", data.len()))),
        Some(b) => Err(CliError::BadInput(format!(
            "{name}: not an ESP image (first byte {b:#04x}; images start with 0xe9, ELF files with 0x7f ELF). Is this the build's firmware.bin?"
        ))),
        None => Err(CliError::BadInput(format!("{name}: empty file"))),
    }
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
        (Image::Bin { chip: Some(chip), .. }, None) => Some(default_address(chip)),
        (Image::Bin { chip_id, .. }, None) => {
            return Err(CliError::BadInput(format!("{name}: unknown chip id {chip_id} in the image header: give --address")))
        }
    };
    let port_path = if args.dry_run { None } else { Some(port::resolve(&args.device.port)?) };
    let mut steps = vec!["connect to the ROM bootloader (resets the board into download mode)".to_string()];
    steps.push(match (&kind, address) {
        (Image::Bin { .. }, Some(a)) => format!("write {} bytes at {a:#x}, verify", thousands(data.len() as u64)),
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
        println!("{}", serde_json::to_string_pretty(&plan).expect("plan serialises"));
        return Ok(());
    }
    if args.dry_run || !args.json {
        let what = match &plan.kind {
            Image::Bin { chip, .. } => format!("flash image for {}", chip.unwrap_or("an unknown chip")),
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
    let mut progress = Progress { total: 1, addr: 0, tty: std::io::stderr().is_terminal() };
    match kind {
        Image::Bin { .. } => flasher.write_bin_to_flash(address.expect("bin has an address"), &data, &mut progress).map_err(espflash_error)?,
        Image::Elf { .. } => {
            let flash_data = FlashData::new(FlashSettings::default(), 0, None, chip, chip.default_xtal_frequency());
            let format = IdfBootloaderFormat::new(&data, &flash_data, None, None, None, None).map_err(espflash_error)?;
            flasher.load_image_to_flash(&mut progress, ImageFormat::EspIdf(format)).map_err(espflash_error)?;
        }
    }
    flasher.connection().reset_after(true, chip).map_err(espflash_error)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan).expect("plan serialises"));
    } else {
        eprintln!("done: {chip} reset and running the new firmware. `heapscope record` or `heapscope attach` next");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_identified() {
        let mut bin = vec![0u8; 32];
        bin[0] = 0xE9;
        bin[12] = 9;
        assert_eq!(identify("x", &bin).unwrap(), Image::Bin { chip: Some("ESP32-S3"), chip_id: 9 });
        assert_eq!(default_address("ESP32-S3"), 0);
        assert_eq!(default_address("ESP32"), 0x1000);
        let mut elf = b"\x7fELF\x01".to_vec();
        elf.resize(20, 0);
        elf[18] = 94;
        assert_eq!(identify("x", &elf).unwrap(), Image::Elf { architecture: "xtensa" });
        let err = identify("notes.txt", b"hello").unwrap_err();
        assert!(err.to_string().contains("not an ESP image"), "{err}");
    }
}
