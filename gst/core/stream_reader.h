// Splitter + assembler over plain byte chunks, producing whole output segments.
// For tools, tests and fuzzing; the element does the same over a GstAdapter (zero copy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "box.h"
#include "stream_assembler.h"

namespace fmp4ws::core {

struct Segment
{
  enum Kind { kInit, kFragment, kWarning, kError } kind = kInit;
  std::vector<uint8_t> bytes;  // init / fragment bytes
  InitInfo init;               // kInit
  FragmentInfo fragment;       // kFragment
  bool discont = false;
  std::string message;         // kWarning / kError
  bool normalized = false;     // kFragment: its moof was rewritten (normalize.h)
  bool timestamp_jump = false; // kFragment: a track's tfdt jumped (a discontinuity)
  std::string info;            // what was normalised and why, the first time
};

class StreamReader
{
public:
  explicit StreamReader (uint64_t max_box_size = 64u << 20) : splitter_ (max_box_size) {}
  // Feeds bytes; returns the segments completed by them. After a kError the reader stops.
  std::vector<Segment> Push (const uint8_t *data, size_t size);
  // End of stream: a warning if bytes of an incomplete box remain.
  std::vector<Segment> Finish ();
  size_t buffered () const { return queue_.Available (); }
  StreamAssembler &assembler () { return assembler_; }

private:
  class Queue : public ByteSource
  {
  public:
    size_t Available () const override { return bytes_.size (); }
    void Peek (size_t offset, size_t n, uint8_t *out) const override;
    void Skip (size_t n) override;
    void Append (const uint8_t *p, size_t n) { bytes_.insert (bytes_.end (), p, p + n); }
    std::vector<uint8_t> Take (size_t n);

  private:
    std::deque<uint8_t> bytes_;
  };

  void Apply (const Decision &d, std::vector<uint8_t> box, std::vector<Segment> *out);

  BoxSplitter splitter_;
  StreamAssembler assembler_;
  Queue queue_;
  std::vector<std::vector<uint8_t>> held_;
  bool failed_ = false;
};

}  // namespace fmp4ws::core
