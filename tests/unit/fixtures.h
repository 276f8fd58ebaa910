// Shared by the unit tests: the streams in tests/fixtures (made by make-fixtures.sh).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

inline std::vector<uint8_t>
ReadFixture (const std::string &name)
{
  std::ifstream f (std::string (FIXTURES_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE (f.good ()) << name;
  return std::vector<uint8_t> ((std::istreambuf_iterator<char> (f)),
                               std::istreambuf_iterator<char> ());
}
