// libyaml (Debian: libyaml-dev, pkg-config yaml-0.1): the event parser we build the
// config loader on.
#pragma once
#include <yaml.h>
