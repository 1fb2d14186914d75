"""PIDF-LO and HELD documents written for these tests in the shapes of the RFCs' examples.

Each is new text, not copied: the addresses are real, routable US places (the simulator and
the offline ZIP data know them), and the namespaces, prefixes and nesting vary the way real
senders vary them.
"""

from __future__ import annotations

#: RFC 5139 section 4's shape: one tuple, the civic address with a floor and a room, the
#: occupant's name, a tel: contact, presence in the default namespace.
CIVIC = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
          xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
          xmlns:gbp="urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
          entity="pres:alice-laptop@example.com">
  <tuple id="a7x2">
    <status>
      <gp:geopriv>
        <gp:location-info>
          <ca:civicAddress xml:lang="en-US">
            <ca:country>US</ca:country>
            <ca:A1>NY</ca:A1>
            <ca:A3>NEW YORK</ca:A3>
            <ca:RD>5TH</ca:RD>
            <ca:STS>AVE</ca:STS>
            <ca:HNO>350</ca:HNO>
            <ca:FLR>86</ca:FLR>
            <ca:NAM>ALICE SMITH</ca:NAM>
            <ca:PC>10118</ca:PC>
            <ca:ROOM>8601</ca:ROOM>
          </ca:civicAddress>
        </gp:location-info>
        <gp:usage-rules>
          <gbp:retransmission-allowed>false</gbp:retransmission-allowed>
          <gbp:retention-expiry>2026-11-02T12:00:00Z</gbp:retention-expiry>
        </gp:usage-rules>
        <gp:method>Manual</gp:method>
      </gp:geopriv>
    </status>
    <contact>tel:+12025550143</contact>
    <timestamp>2026-11-01T12:00:00Z</timestamp>
  </tuple>
</presence>
"""

#: RFC 5491's Point in a dm:device (RFC 4479), every namespace under an unusual prefix.
POINT = b"""<?xml version="1.0" encoding="UTF-8"?>
<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf"
            xmlns:d="urn:ietf:params:xml:ns:pidf:data-model"
            xmlns:loc="urn:ietf:params:xml:ns:pidf:geopriv10"
            xmlns:geo="http://www.opengis.net/gml"
            entity="sip:bob-phone@pbx.example.net">
  <d:device id="dev1">
    <loc:geopriv>
      <loc:location-info>
        <geo:Point srsName="urn:ogc:def:crs:EPSG::4326">
          <geo:pos>38.8977 -77.0365</geo:pos>
        </geo:Point>
      </loc:location-info>
      <loc:usage-rules/>
    </loc:geopriv>
    <d:deviceID>mac:00a0c9144c1d</d:deviceID>
    <d:timestamp>2026-11-01T12:00:05+00:00</d:timestamp>
  </d:device>
</p:presence>
"""

#: RFC 5491's Circle: a radius in metres, the shapes' namespace under its usual prefix.
CIRCLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
          xmlns:gml="http://www.opengis.net/gml"
          xmlns:gs="http://www.opengis.net/pidflo/1.0"
          entity="pres:carol@example.org">
  <tuple id="c1">
    <status>
      <gp:geopriv>
        <gp:location-info>
          <gs:Circle srsName="urn:ogc:def:crs:EPSG::4326">
            <gml:pos>47.6205 -122.3493</gml:pos>
            <gs:radius uom="urn:ogc:def:uom:EPSG::9001">35.5</gs:radius>
          </gs:Circle>
        </gp:location-info>
        <gp:usage-rules/>
      </gp:geopriv>
    </status>
    <timestamp>2026-11-01T12:00:10Z</timestamp>
  </tuple>
</presence>
"""

#: The awkward parts together: a tuple with plain presence and no location, the civic
#: address in its own default namespace with a county, a suite and an extension element
#: (RFC 6848's milepost), the Point in another tuple with an older timestamp, a comment.
MIXED = b"""<?xml version="1.0" encoding="UTF-8"?>
<pidf:presence xmlns:pidf="urn:ietf:params:xml:ns:pidf"
               xmlns:g="urn:ietf:params:xml:ns:pidf:geopriv10"
               xmlns:cae="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr:ext"
               xmlns:gml="http://www.opengis.net/gml"
               entity="pres:dave-desk@example.com">
  <pidf:tuple id="im">
    <pidf:status><pidf:basic>open</pidf:basic></pidf:status>
    <pidf:contact>sip:dave@example.com</pidf:contact>
  </pidf:tuple>
  <pidf:tuple id="where-civic">
    <pidf:status>
      <g:geopriv>
        <g:location-info>
          <!-- the place, as the enterprise LIS knows it -->
          <civicAddress xmlns="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr">
            <country>US</country>
            <A1>IL</A1>
            <A2>COOK</A2>
            <A3>CHICAGO</A3>
            <PRD>S</PRD>
            <RD>WACKER</RD>
            <STS>DR</STS>
            <HNO>233</HNO>
            <NAM>DAVE JONES</NAM>
            <PC>60606</PC>
            <UNIT>STE 3500</UNIT>
            <cae:MP>12</cae:MP>
          </civicAddress>
        </g:location-info>
        <g:usage-rules/>
      </g:geopriv>
    </pidf:status>
    <pidf:contact>tel:+1-312-555-0199</pidf:contact>
    <pidf:timestamp>2026-11-01T12:00:30Z</pidf:timestamp>
  </pidf:tuple>
  <pidf:tuple id="where-geo">
    <pidf:status>
      <g:geopriv>
        <g:location-info>
          <gml:Point srsName="urn:ogc:def:crs:EPSG::4326">
            <gml:pos>41.8789 -87.6359</gml:pos>
          </gml:Point>
        </g:location-info>
        <g:usage-rules/>
      </g:geopriv>
    </pidf:status>
    <pidf:timestamp>2026-11-01T12:00:20Z</pidf:timestamp>
  </pidf:tuple>
</pidf:presence>
"""

#: RFC 4119's own civic format (civicLoc namespace), where A6 was the street.
LEGACY = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
          xmlns:cl="urn:ietf:params:xml:ns:pidf:geopriv10:civicLoc"
          entity="pres:erin@example.com">
  <tuple id="old">
    <status>
      <gp:geopriv>
        <gp:location-info>
          <cl:civicAddress>
            <cl:country>US</cl:country>
            <cl:A1>WA</cl:A1>
            <cl:A3>SEATTLE</cl:A3>
            <cl:A6>BROAD</cl:A6>
            <cl:STS>ST</cl:STS>
            <cl:HNO>400</cl:HNO>
            <cl:NAM>ERIN LEE</cl:NAM>
            <cl:PC>98109</cl:PC>
          </cl:civicAddress>
        </gp:location-info>
        <gp:usage-rules>
          <gp:retransmission-allowed>no</gp:retransmission-allowed>
        </gp:usage-rules>
      </gp:geopriv>
    </status>
    <contact>tel:+12065550100</contact>
    <timestamp>2026-11-01T12:01:00Z</timestamp>
  </tuple>
</presence>
"""

#: RFC 4119's printed civic example's shape: the civicLoc namespace declared with a space
#: before it (as the RFC prints it, and devices copying it send it), no NAM, no contact.
SPACED_NAMESPACE = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
   xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
   xmlns:cl=" urn:ietf:params:xml:ns:pidf:geopriv10:civicLoc"
   entity="pres:frank-phone@example.com">
 <tuple id="f1">
  <status>
   <gp:geopriv>
     <gp:location-info>
       <cl:civicAddress>
         <cl:country>US</cl:country>
         <cl:A1>New York</cl:A1>
         <cl:A3>New York</cl:A3>
         <cl:A6>Broadway</cl:A6>
         <cl:HNO>2880</cl:HNO>
         <cl:LOC>Suite 75</cl:LOC>
         <cl:PC>10025-7808</cl:PC>
       </cl:civicAddress>
     </gp:location-info>
     <gp:usage-rules>
       <gp:retransmission-allowed>yes</gp:retransmission-allowed>
     </gp:usage-rules>
   </gp:geopriv>
  </status>
  <contact>tel:+12125550123</contact>
  <timestamp>2026-11-01T12:02:00Z</timestamp>
 </tuple>
</presence>
"""

#: RFC 4119's printed geodetic example's shape: a Point wrapped in gml:location, in the GML
#: 3.0 draft's namespace, srsName "epsg:4326", degrees-minutes-seconds with hemispheres.
RFC4119_POINT = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
    xmlns:gml="urn:opengis:specification:gml:schema-xsd:feature:v3.0"
    entity="pres:gina@example.com">
  <tuple id="g1">
   <timestamp>2026-11-01T12:03:00Z</timestamp>
   <status>
    <gp:geopriv>
      <gp:location-info>
        <gml:location>
          <gml:Point gml:id="p1" srsName="epsg:4326">
            <gml:coordinates>40:44:54N 73:59:09W</gml:coordinates>
          </gml:Point>
        </gml:location>
      </gp:location-info>
      <gp:usage-rules/>
    </gp:geopriv>
   </status>
  </tuple>
</presence>
"""

#: RFC 6442's conveyance example's shape: a dm:device whose Point sits in gml:location,
#: here next to a civic address of the same place (a LIS often sends both).
WRAPPED_POINT = b"""<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
   xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"
   xmlns:gbp="urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
   xmlns:ca="urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
   xmlns:gml="http://www.opengis.net/gml"
   xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
   entity="pres:hank-desk@example.com">
  <dm:device id="hank-1">
    <gp:geopriv>
      <gp:location-info>
        <gml:location>
          <gml:Point srsName="urn:ogc:def:crs:EPSG::4326">
            <gml:pos>41.8789 -87.6359</gml:pos>
          </gml:Point>
        </gml:location>
        <ca:civicAddress>
          <ca:country>US</ca:country><ca:A1>IL</ca:A1><ca:A3>CHICAGO</ca:A3>
          <ca:PRD>S</ca:PRD><ca:RD>WACKER</ca:RD><ca:STS>DR</ca:STS><ca:HNO>233</ca:HNO>
          <ca:NAM>HANK HILL</ca:NAM><ca:PC>60606</ca:PC>
        </ca:civicAddress>
      </gp:location-info>
      <gp:usage-rules>
        <gbp:retransmission-allowed>false</gbp:retransmission-allowed>
      </gp:usage-rules>
      <gp:method>802.11</gp:method>
    </gp:geopriv>
    <dm:deviceID>mac:1234567890ab</dm:deviceID>
    <dm:timestamp>2026-11-01T12:04:00Z</dm:timestamp>
  </dm:device>
</presence>
"""

ALL = {
    "civic": CIVIC,
    "point": POINT,
    "circle": CIRCLE,
    "mixed": MIXED,
    "legacy": LEGACY,
    "spaced-namespace": SPACED_NAMESPACE,
    "rfc4119-point": RFC4119_POINT,
    "wrapped-point": WRAPPED_POINT,
}

#: RFC 5985/6155's request shape: civic and geodetic, exact, a responseTime, a device by URI.
HELD_REQUEST = b"""<?xml version="1.0" encoding="UTF-8"?>
<locationRequest xmlns="urn:ietf:params:xml:ns:geopriv:held" responseTime="8000">
  <locationType exact="true">civic geodetic</locationType>
  <device xmlns="urn:ietf:params:xml:ns:geopriv:held:id">
    <uri>sip:alice-laptop@example.com</uri>
  </device>
</locationRequest>
"""


def held_request(
    *,
    types: str | None = None,
    exact: str | None = None,
    response_time: str | None = None,
    device: str | None = None,
) -> bytes:
    """A locationRequest with the parts given (``device``: the inner XML of <device>)."""
    attrs = f' responseTime="{response_time}"' if response_time is not None else ""
    parts = []
    if types is not None:
        exact_attr = f' exact="{exact}"' if exact is not None else ""
        parts.append(f"<locationType{exact_attr}>{types}</locationType>")
    if device is not None:
        parts.append(f'<device xmlns="urn:ietf:params:xml:ns:geopriv:held:id">{device}</device>')
    return (
        f'<locationRequest xmlns="urn:ietf:params:xml:ns:geopriv:held"{attrs}>'
        f"{''.join(parts)}</locationRequest>"
    ).encode()
