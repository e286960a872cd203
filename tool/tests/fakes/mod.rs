//! Fakes for the tool's I/O, so protocol logic can be tested without a board.
// Each test binary uses some of these.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use heapscope::link::{Gone, Link};

/// A board that answers what it is sent from a script: when the bytes written so far end with
/// a trigger, its reply is queued for reading.
pub struct ScriptedLink {
    script: VecDeque<(Vec<u8>, Vec<u8>)>,
    written: Vec<u8>,
    to_read: VecDeque<u8>,
    /// Everything written, for assertions.
    pub log: Arc<Mutex<Vec<u8>>>,
}

impl ScriptedLink {
    pub fn new(script: &[(&[u8], &[u8])]) -> ScriptedLink {
        ScriptedLink {
            script: script.iter().map(|(t, r)| (t.to_vec(), r.to_vec())).collect(),
            written: Vec::new(),
            to_read: VecDeque::new(),
            log: Arc::default(),
        }
    }
}

impl Link for ScriptedLink {
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, Gone> {
        if self.to_read.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(2));
            return Ok(0);
        }
        let n = buf.len().min(self.to_read.len());
        for b in buf.iter_mut().take(n) {
            *b = self.to_read.pop_front().unwrap();
        }
        Ok(n)
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), Gone> {
        self.written.extend_from_slice(data);
        self.log.lock().unwrap().extend_from_slice(data);
        while let Some((trigger, _)) = self.script.front() {
            if !self.written.ends_with(trigger) {
                break;
            }
            let (_, reply) = self.script.pop_front().unwrap();
            self.to_read.extend(reply);
            self.written.clear();
        }
        Ok(())
    }
}

/// A link that never delivers anything, and takes its time saying so.
pub struct SilentLink;

impl Link for SilentLink {
    fn read_some(&mut self, _: &mut [u8]) -> Result<usize, Gone> {
        std::thread::sleep(std::time::Duration::from_millis(200));
        Ok(0)
    }

    fn write_all(&mut self, _: &[u8]) -> Result<(), Gone> {
        Ok(())
    }
}
