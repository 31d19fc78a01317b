// COCO segmentation masks as pycocotools handles them (upstream's `--masks` gets them from there): the
// run-length encoding (RLE) of cocoapi's maskApi.c and the way COCO.annToRLE reads an annotation's
// `segmentation`, equal to pycocotools bit for bit (tests/data/masks). Pure C++17: no tensors.
//
//   Rle rle = rle_from_segmentation(ann.at("segmentation"), image_height, image_width);
//   std::vector<uint8_t> mask = decode(rle, MaskLayout::row_major);  // height*width bytes, 0 or 1
//
// An RLE is the storage form: it takes memory in proportion to the mask's boundary, and nothing here
// allocates height*width bytes except decode(). Every function checks its input and throws
// std::runtime_error "<field>: <what>" (for example "segmentation.counts: runs sum to 79 pixels,
// expected height*width = 80"); the caller adds the file and annotation.
//
// Where pycocotools raises, reads or writes out of bounds, loops forever or allocates without limit,
// these functions throw instead:
//  - sizes: 1 <= height, width and height*width <= kMaxMaskPixels;
//  - an RLE's counts are whole numbers that sum to height*width, in at most height*width + 1 runs
//    (more take zero-length runs, on which rleMerge overruns its buffer); compressed counts use only
//    '0'..'o', at most 6 characters a value, none cut off, no negative run;
//  - polygon coordinates are numbers (not strings or booleans, which numpy would convert), finite and
//    within +-kMaxPolygonCoordinate; one polygon's upsampled boundary has at most kMaxPolygonSteps
//    points (pycocotools allocates 8 bytes for each).
// pycocotools quirks kept, because its results depend on them: an odd coordinate count drops the last
// number; a zero-length run in an RLE stays in its counts and, as in maskApi, makes to_bbox count the
// pixel before it and ends merge() and iou() early (merge() throws where that loses pixels).
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace detr::datasets {

// 2^29 - 1: pycocotools' rleFrString decodes a run of 2^29 pixels or more wrongly (it shifts an int
// past 32 bits), so a larger mask could not round-trip through a compressed RLE.
constexpr int64_t kMaxMaskPixels = (int64_t{1} << 29) - 1;
constexpr double kMaxPolygonCoordinate = 1e8;           // 5x upsampled, differences still fit an int
constexpr int64_t kMaxPolygonSteps = int64_t{1} << 26;  // upsampled boundary points of one polygon

// A binary mask of height x width pixels in pycocotools' form: the lengths of alternating runs of 0 and
// 1 in column-major order (pixel (y, x) is number x*height + y), starting with a (possibly empty) run
// of zeros. The counts sum to height*width.
struct Rle {
  int64_t height = 0, width = 0;
  std::vector<uint32_t> counts;
};

// Pixel order of a dense mask: column_major as pycocotools (index x*height + y), row_major as a
// [height, width] tensor (index y*width + x).
enum class MaskLayout { column_major, row_major };

// COCO.annToRLE: a list of polygons -> their union (frPyObjects + merge); an object with list counts ->
// uncompressed RLE (CVAT's brush masks); an object with string counts -> compressed RLE; a list of
// uncompressed RLE objects -> their union. An RLE's `size` must be [height, width] of the image.
// Throws for an empty list: CVAT writes `[]` for rectangles, for which the caller may use rle_from_box.
Rle rle_from_segmentation(const nlohmann::json& segmentation, int64_t height, int64_t width);

// An annotation's `segmentation` as a dataset keeps it: polygons as the file gives them, or one RLE
// (compressed or uncompressed counts; a list of uncompressed RLE objects merged), never a dense mask.
// Empty when the annotation has none (absent, null, or `[]`, which CVAT writes for rectangles).
struct Segmentation {
  std::vector<std::vector<double>> polygons;  // [x0, y0, x1, y1, ...] each, in pixels
  std::optional<Rle> rle;                     // height x width of the annotation's image
  bool empty() const { return polygons.empty() && !rle; }
};

// Reads a `segmentation` as COCO.annToRLE would, with every check rle_from_segmentation makes, without
// rasterising polygons or allocating height*width: null and [] give an empty Segmentation (pycocotools
// raises on []); polygons are kept as given; an RLE is decoded and its `size` must be
// [height, width]. Polygons need no image size (height, width may be 0 where an evaluation file does
// not declare it); an RLE does.
Segmentation read_segmentation(const nlohmann::json& segmentation, int64_t height, int64_t width);

// COCO.annToRLE on a read Segmentation: the union of its polygons, or its RLE (whose size must be
// height x width). Throws for an empty one: annToRLE has no mask for it (datasets/coco.h's object_rle
// gives the box instead).
Rle segmentation_rle(const Segmentation& segmentation, int64_t height, int64_t width);

// frPyObjects on a polygon list ([x0, y0, x1, y1, ...] each) and merge: maskApi's rleFrPoly, union.
// As in pycocotools the first polygon needs more than 4 numbers (it would read 4 as a box); the
// others may have any number (fewer than 6 give an empty mask).
Rle rle_from_polygons(const std::vector<std::vector<double>>& polygons, int64_t height, int64_t width);

// Every check rle_from_polygons makes but the image size (coordinates finite and within range, the
// boundary's length, pycocotools' rules on the first polygon), without rasterising: for readers that
// keep polygons to rasterise later. Throws "polygons[i]: <what>".
void check_polygons(const std::vector<std::vector<double>>& polygons);

// frBbox: the box [x, y, width, height] rasterised as the polygon of its corners.
Rle rle_from_box(const std::array<double, 4>& xywh, int64_t height, int64_t width);

// An uncompressed RLE ({"counts": [...], "size": [height, width]}), counts as given.
Rle rle_from_uncompressed(const std::vector<int64_t>& counts, int64_t height, int64_t width);

// rleFrString / rleToString: pycocotools' compressed counts (6 bits a character, '0'..'o').
Rle rle_from_string(const std::string& counts, int64_t height, int64_t width);
std::string rle_to_string(const Rle& rle);

// A mask given as row-major run lengths over a box (CVAT XML's <mask rle="...">: alternating runs of
// background and foreground over box_width x box_height pixels, background first) placed at (left, top)
// on a height x width image, as an image-sized RLE. The box must lie inside the image and the runs sum
// to its area. Time and memory follow the runs and the result, never height*width: a run is at most
// three rectangles swept column segment by segment; the result is refused beyond kMaxRowRunCounts
// counts and the sweep beyond 8 * kMaxRowRunCounts steps.
constexpr int64_t kMaxRowRunCounts = int64_t{1} << 24;
Rle rle_from_row_runs(const std::vector<int64_t>& runs,
                      int64_t left,
                      int64_t top,
                      int64_t box_width,
                      int64_t box_height,
                      int64_t height,
                      int64_t width);

// rleEncode / rleDecode. encode() takes any nonzero byte as foreground; decode() gives 0 or 1.
Rle encode(const uint8_t* mask, int64_t height, int64_t width, MaskLayout layout);
std::vector<uint8_t> decode(const Rle& rle, MaskLayout layout);

// rleMerge: union (or intersection) of masks of one size; one mask is returned as it is.
Rle merge(const std::vector<Rle>& rles, bool intersect = false);

// rleArea: the number of foreground pixels.
uint64_t area(const Rle& rle);

// rleToBbox: [x, y, width, height] of the foreground; all 0 for an empty mask.
std::array<double, 4> to_bbox(const Rle& rle);

// rleIou as COCOeval(iouType='segm') calls it: a [dt.size() x gt.size()] row-major matrix of
// intersection / union, or intersection / area(dt) where iscrowd[g] (a detection may match part of a
// crowd region); -1 where the two masks differ in size and their boxes overlap, 0 where boxes do not.
std::vector<double> iou(const std::vector<Rle>& dt, const std::vector<Rle>& gt, const std::vector<bool>& iscrowd);

}  // namespace detr::datasets
