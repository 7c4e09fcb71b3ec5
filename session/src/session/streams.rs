//! The application's side of streams: open, write, finish, reset and read.

use super::Session;
use crate::error::{Error, Result};
use crate::frame::Record;
use crate::stream::{Read, Stream};

impl Session {
    /// Opens a stream.
    pub fn open_stream(&mut self) -> Result<u32> {
        self.check_open()?;
        if self.streams.len() >= self.cfg.max_streams {
            return Err(Error::TooManyStreams);
        }
        let id = self.next_local_id;
        self.next_local_id = self.next_local_id.checked_add(2).ok_or(Error::TooManyStreams)?;
        self.streams.insert(id, Stream::new(self.cfg.stream_window));
        Record::Open { id }.encode(&mut self.control);
        Ok(id)
    }

    fn stream(&mut self, id: u32) -> Result<&mut Stream> {
        self.streams.get_mut(&id).ok_or(Error::UnknownStream(id))
    }

    /// Queues bytes on a stream; returns how many were taken (0: wait for `Writable`).
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<usize> {
        self.check_open()?;
        let cap = self.cfg.send_buffer;
        let s = self.stream(id)?;
        if let Some(code) = s.reset {
            return Err(Error::StreamReset(id, code));
        }
        if s.send.fin_requested {
            return Err(Error::StreamFinished(id));
        }
        let n = data.len().min(cap.saturating_sub(s.send.pending.len()));
        s.send.pending.extend(&data[..n]);
        if n < data.len() {
            s.send.blocked = true;
        }
        self.stats.bytes_written += n as u64;
        Ok(n)
    }

    /// Finishes the sending half of a stream (FIN after everything written).
    pub fn finish(&mut self, id: u32) -> Result<()> {
        self.check_open()?;
        let s = self.stream(id)?;
        s.send.fin_requested = true;
        Ok(())
    }

    /// Abandons a stream in both directions.
    pub fn reset(&mut self, id: u32, code: u32) -> Result<()> {
        self.check_open()?;
        self.streams.remove(&id).ok_or(Error::UnknownStream(id))?;
        Record::Reset { id, code }.encode(&mut self.control);
        Ok(())
    }

    /// Reads from a stream.
    pub fn read(&mut self, id: u32, buf: &mut [u8]) -> Result<Read> {
        let window = self.cfg.stream_window;
        let s = self.stream(id)?;
        if let Some(code) = s.reset {
            return Err(Error::StreamReset(id, code));
        }
        let (r, grant) = s.read(buf, window);
        let done = s.finished();
        if let Some(max_offset) = grant {
            Record::Window { id, max_offset }.encode(&mut self.control);
        }
        if done {
            self.streams.remove(&id);
        }
        if let Read::Data(n) = &r {
            self.stats.bytes_read += *n as u64;
        }
        Ok(r)
    }
}
