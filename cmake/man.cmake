# oss-relay.1 from the binary's --help: cmake -DBIN=... -DOUT=... -DVERSION=... -P man.cmake
execute_process(COMMAND ${BIN} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${BIN} --help failed (${rc})")
endif()
# roff: a backslash is \e; a line starting with '.' or ' would be a request.
string(REPLACE "\\" "\\e" help "${help}")
string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
string(REPLACE "-" "\\-" help "${help}")
file(WRITE ${OUT}
".TH OSS-RELAY 1 \"\" \"oss-relay ${VERSION}\" \"User Commands\"
.SH NAME
oss-relay \\- reverse proxy for OpenAI-compatible LLM servers
.SH SYNOPSIS
.B oss-relay
[\\fB\\-\\-script\\fR \\fIFILE\\fR] [\\fB\\-\\-check\\fR]
.br
.B oss-relay
\\fB\\-\\-run\\fR \\fIFILE.lua\\fR
.SH DESCRIPTION
.nf
${help}.fi
.SH FILES
.TP
.I share/oss-relay/lua/relay/
the Lua modules compiled into the binary (the stock script is default.lua)
.SH SEE ALSO
README.md, API.md and examples/ in the documentation directory (share/doc/oss-relay).
")
