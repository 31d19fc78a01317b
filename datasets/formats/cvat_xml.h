// CVAT for images 1.1 (annotations.xml) as CVAT writes a task, job or project dump:
//   <annotations><version>1.1</version>
//     <meta><task|project|job>...<labels><label><name/>...</label></labels>
//           <original_size><width/><height/></original_size></task|project|job></meta>
//     <image id="0" name="a.jpg" width="640" height="480" [subset="Train"]>
//       <box label xtl ytl xbr ybr occluded [outside]/>  <polygon label points="x,y;x,y;..."/>
//       <mask label rle="n0, n1, ..." left top width height/>  <ellipse label cx cy rx ry/>
//       <polyline/> <points/> <skeleton/> <cuboid/> <tag/> (not boxes: left out, as CVAT's COCO export does)
//     </image>
//     <track id label> <box frame="10" outside="0" .../> ... </track>   (CVAT for video dumps)
//   </annotations>
// Images are in images/<subset>/<name> (projects), images/<name> or beside the XML. Categories are
// every label of the meta in order (skeleton parts included), as CVAT's COCO export lists them.
// Decisions:
//  - a polygon's box is its points' bounding box (points kept in RawObject::polygons);
//  - a mask keeps its pixels (RawObject::mask, for --masks), its tight box and pixel count, and is a
//    crowd RLE as CVAT's COCO export writes it: --crowd (cvat_policy.h) decides, and its default
//    (auto) trains it as an object, as for CVAT's COCO export;
//  - an ellipse is an ignore region (iscrowd) with its box; rotation is ignored as in CVAT's COCO
//    export (boxes unrotated); any shape with <attribute name="is_crowd">true</attribute> is crowd
//    (a mask marked so is then like any other mask, as in CVAT's COCO export, which drops the attribute);
//  - outside="1" shapes (a track's object out of view) are left out; occluded ones train;
//  - a shape with label="" (no label) is dropped and counted; a label not in the meta is an error;
//  - track shapes are taken on the frames they are written for (CVAT writes every frame of a track,
//    interpolated ones included); a frame without an <image> is images/frame_NNNNNN.<ext>, sized by
//    original_size or its header.
#pragma once
#include <array>
#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// The XML dump in root: annotations.xml, else the one *.xml whose root element is <annotations>.
std::filesystem::path find_cvat_xml(const std::filesystem::path& root);

// Errors name the file, line, element and attribute: malformed XML, a missing or non-numeric
// coordinate, an image without id/name or with a non-positive size, a label not in the meta, points
// that are not "x,y;x,y;...", a mask whose runs do not cover width x height.
RawExport read_cvat_xml(const std::filesystem::path& root);

// A CVAT mask's row-major run lengths over width x height (starting with background). Throws "<what>"
// when a count is not a non-negative integer or the runs do not sum to width * height.
std::vector<int64_t> cvat_mask_runs(std::string_view rle, int64_t width, int64_t height);

}  // namespace detr::datasets::formats
