// LabelMe 3.0 as CVAT and Datumaro write it: one XML per image,
//   <annotation><filename/><folder/><imagesize><nrows/><ncols/></imagesize>
//     <object><name/><deleted/><occluded/><type/>  (type bounding_box: a box drawn as 4 points)
//       <polygon><pt><x/><y/></pt>...</polygon>  or  <segm><box><xmin/>...</box><mask/></segm>
//     </object>...</annotation>
// Layouts: CVAT's <subset>/<name>.xml beside <subset>/<name>.<ext> (one folder per subset, "default"
// for a task); XML files directly in the root (subset "default"); or Annotations/<subset>/ with the
// images in Images/<subset>/.
// LabelMe has no label list: categories are the object names in order of first appearance (subsets in
// name order, files in name order), as Datumaro's importer numbers them. Decisions:
//  - a polygon's box is its points' bounding box; the points are kept (RawObject::polygons);
//  - a <segm> keeps the pixels of its mask PNG (Masks/<name>, or Masks/<subset>/ in the Annotations/
//    layout; foreground where a colour channel is nonzero), its box and area the mask's; without the
//    PNG, its <box> alone (a warning counts them). It is a crowd RLE as CVAT's COCO export writes
//    masks: --crowd decides (cvat_policy.h), and its default trains it as an object;
//  - <attributes> naming is_crowd (bare, =true or =1) make the object crowd;
//  - deleted objects (<deleted>1</deleted>) are left out; occluded ones train.
#pragma once
#include <filesystem>

#include "datasets/formats/export.h"

namespace detr::datasets::formats {

// Errors name the file, line and field: malformed XML, an object without <name> or without a
// polygon or segm box, a point that is not a number, a polygon of fewer than 3 points (2 for a
// bounding_box), a non-positive imagesize, a mask PNG that cannot be read or decoded.
RawExport read_labelme(const std::filesystem::path& root);

}  // namespace detr::datasets::formats
