// HTML of the status page (GET /) and of one service's page (GET /services/{id}) from the data
// api/status_data.h loads. Self-contained pages: inline CSS and SVG, no external asset,
// readable without JavaScript (a few lines reload the page every 30 s). Every user string is
// escaped. Any thread.
#pragma once

#include <string>

#include "api/status_data.h"

namespace vigil {

std::string render_status_page(const StatusPageData& data);
std::string render_service_page(const ServicePageData& data);
// A small page for an unknown service (served with 404).
std::string render_not_found_page(const std::string& title, const std::string& message);

}  // namespace vigil
