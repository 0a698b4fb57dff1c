# The English forms are the page's original strftime formats, byte for byte.
BEACON_DATETIME_FORMAT = "M j, Y H:i T"
BEACON_DATETIME_NO_ZONE_FORMAT = "M j, Y H:i"
BEACON_TIME_FORMAT = "H:i T"
BEACON_DATE_FORMAT = "M j, Y"
BEACON_DAY_TIME_FORMAT = "M j H:i"
BEACON_DAY_FORMAT = "M j"
# {} is the number with the locale's decimal separator.
BEACON_PERCENT_FORMAT = "{}%"
