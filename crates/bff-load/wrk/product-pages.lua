-- wrk script: mobile-bff's product pages p-1 … p-8 in turn, with a bearer
-- token from $TOKEN. Used by blip.sh (see RELIABILITY.md).
local n = 0

init = function(args)
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end

request = function()
  n = n + 1
  return wrk.format("GET", "/v1/product-page/p-" .. ((n % 8) + 1))
end
